//! Property tests of staging and decoding fetched blobs: whatever bytes of a fetch answer
//! are damaged, the partition's buffer stays consistent.

#![allow(clippy::unwrap_used)]

use bytes::Bytes;
use proptest::prelude::*;

use super::decode::{decode_next, rewind, stage_records, Decoded};
use super::tests::batch;
use super::*;

/// `buffered_bytes` counts the decoded records and the undecoded blobs, nothing else.
fn counted_bytes(state: &PartitionState) -> usize {
    let records: usize = state.buffered.iter().map(ConsumerRecord::size_bytes).sum();
    records
        + state
            .undecoded
            .iter()
            .map(|(_, blob)| blob.len())
            .sum::<usize>()
}

proptest! {
    /// Batches of 1–4 records with up to four bytes flipped and the tail maybe cut, staged
    /// as one answer from `fetch_offset`, then decoded to the end: no panic; the buffer's
    /// byte count matches its contents after every step; offsets only grow and none is
    /// below the fetch offset; a corrupt batch hands out nothing from itself on
    /// (every offset buffered is below where it is fetched again).
    #[test]
    fn a_damaged_answer_leaves_the_buffer_consistent(
        counts in prop::collection::vec(1i64..5, 1..4),
        flips in prop::collection::vec((any::<prop::sample::Index>(), 1u8..=255), 0..4),
        cut in any::<prop::sample::Index>(),
        cut_tail in any::<bool>(),
        fetch_offset in 0i64..3,
    ) {
        let mut blob = Vec::new();
        let mut base = 0;
        for count in counts {
            blob.extend(batch(base, count));
            base += count;
        }
        for (at, flip) in flips {
            let at = at.index(blob.len());
            blob[at] ^= flip;
        }
        if cut_tail {
            blob.truncate(cut.index(blob.len() + 1));
        }
        let mut state = PartitionState {
            fetch_offset,
            ..PartitionState::default()
        };
        stage_records(&mut state, Bytes::from(blob));
        prop_assert_eq!(state.buffered_bytes, counted_bytes(&state));
        let tp = TopicPartition::new("t", 0);
        for _ in 0..8 {
            match decode_next(&tp, &mut state, 1 << 20) {
                Decoded::Records => {}
                Decoded::Nothing => break,
                Decoded::Corrupt { refetch_from } => {
                    prop_assert!(state.buffered.iter().all(|r| r.offset < refetch_from));
                    rewind(&mut state, refetch_from, 1);
                    prop_assert_eq!(state.fetch_offset, refetch_from);
                    prop_assert_eq!(state.buffered_bytes, counted_bytes(&state));
                    break;
                }
            }
            prop_assert_eq!(state.buffered_bytes, counted_bytes(&state));
        }
        let offsets: Vec<i64> = state.buffered.iter().map(|r| r.offset).collect();
        prop_assert!(offsets.windows(2).all(|w| w[0] < w[1]), "{:?}", offsets);
        prop_assert!(offsets.iter().all(|&o| o >= fetch_offset), "{:?}", offsets);
    }
}
