//! Leader epochs. This one node leads every partition from its creation and is never
//! re-elected, so every partition's epoch is [`LEADER_EPOCH`]: what Metadata and ListOffsets
//! report and what clients send back in Fetch (v9+) and ListOffsets (v4+). (Stored batches
//! carry 0 too: the append path zeroes their leader epoch field.)

use kafka_protocol::error::ResponseError;

/// Every partition's leader epoch.
pub const LEADER_EPOCH: i32 = 0;

/// Kafka's `Partition.checkCurrentLeaderEpoch` for the epoch a client last saw (`None`: the
/// client asks for no check). Below ours its metadata is stale: FENCED_LEADER_EPOCH, and the
/// client refreshes it. Above ours it knows a leader this broker does not (yet):
/// UNKNOWN_LEADER_EPOCH, which clients retry.
pub fn check(client_epoch: Option<i32>) -> Result<(), ResponseError> {
    match client_epoch {
        Some(epoch) if epoch < LEADER_EPOCH => Err(ResponseError::FencedLeaderEpoch),
        Some(epoch) if epoch > LEADER_EPOCH => Err(ResponseError::UnknownLeaderEpoch),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn epochs_below_ours_are_fenced_above_unknown() {
        assert_eq!(check(None), Ok(()));
        assert_eq!(check(Some(LEADER_EPOCH)), Ok(()));
        assert_eq!(
            check(Some(LEADER_EPOCH - 1)),
            Err(ResponseError::FencedLeaderEpoch)
        );
        assert_eq!(
            check(Some(LEADER_EPOCH + 1)),
            Err(ResponseError::UnknownLeaderEpoch)
        );
        assert_eq!(
            check(Some(i32::MAX)),
            Err(ResponseError::UnknownLeaderEpoch)
        );
    }
}
