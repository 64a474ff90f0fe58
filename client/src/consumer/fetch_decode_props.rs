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

/// What the poll loop does next to one partition.
#[derive(Debug, Clone)]
enum Step {
    /// An answer of these batches' record counts arrives, from the fetch offset on.
    Arrive(Vec<i64>),
    /// A poll takes up to this many records.
    Take(usize),
    /// The application seeks back this far behind its position.
    SeekBack(i64),
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        prop::collection::vec(1i64..6, 1..4).prop_map(Step::Arrive),
        (1usize..12).prop_map(Step::Take),
        (0i64..4).prop_map(Step::SeekBack),
    ]
}

proptest! {
    /// Answers, polls of any size and seeks, interleaved: every poll hands out the offsets
    /// that follow the position, with no gap and none twice (records whose values name
    /// their offsets), and the position ends one past the last record handed out.
    #[test]
    fn polls_hand_out_each_offset_once_in_order(steps in prop::collection::vec(step(), 1..30)) {
        let tp = TopicPartition::new("t", 0);
        let mut fetcher = Fetcher::new(
            crate::cluster::Cluster::offline(&[("t", 1)]),
            ConsumerConfig::new("x"),
        );
        fetcher.assign(std::slice::from_ref(&tp));
        fetcher.seek(&tp, 0).unwrap();
        for step in steps {
            match step {
                Step::Arrive(counts) => {
                    let state = fetcher.partitions.get_mut(&tp).unwrap();
                    let mut blob = Vec::new();
                    let mut base = state.fetch_offset;
                    for count in counts {
                        blob.extend(batch(base, count));
                        base += count;
                    }
                    stage_records(state, Bytes::from(blob));
                    let shared = state.shared.get_or_insert_with(|| Arc::new(tp.clone()));
                    fetcher.with_data.insert(shared.clone());
                }
                Step::Take(max) => {
                    let before = fetcher.partitions[&tp].position.unwrap();
                    let taken = fetcher.take(max);
                    prop_assert!(taken.len() <= max);
                    for (i, record) in taken.iter().enumerate() {
                        prop_assert_eq!(record.offset, before + i as i64);
                        let value = format!("v{}", record.offset);
                        prop_assert_eq!(record.value.as_deref(), Some(value.as_bytes()));
                    }
                    let after = fetcher.partitions[&tp].position.unwrap();
                    prop_assert_eq!(after, before + taken.len() as i64);
                    let state = &fetcher.partitions[&tp];
                    prop_assert_eq!(state.buffered_bytes, counted_bytes(state));
                }
                Step::SeekBack(back) => {
                    let position = fetcher.partitions[&tp].position.unwrap();
                    fetcher.seek(&tp, (position - back).max(0)).unwrap();
                }
            }
        }
    }
}
