//! OpenMessaging Benchmark's standard workload shapes as named presets of the `e2e`
//! workload: producers and consumers run together on the preset's topics × partitions with
//! 1 KiB messages, one producer and one consumer per topic (OMB's `producersPerTopic: 1`,
//! `consumerPerSubscription: 1`), and the report gives publish and end-to-end latency and
//! throughput. OMB's own files fix `producerRate: 50000` and run for 15 minutes; a preset
//! runs at max rate for [`OMB_SECONDS_DEFAULT`] unless `--rate` / `--seconds` say otherwise.

use clap::ValueEnum;

/// OMB's `messageSize` in these workloads.
pub const OMB_MESSAGE_BYTES: usize = 1024;
/// Run time when neither `--seconds` nor `--messages` is given.
pub const OMB_SECONDS_DEFAULT: f64 = 10.0;

/// A named OMB workload (the name is OMB's workload file name without `.yaml`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OmbPreset {
    /// 1 topic × 1 partition × 1 KiB.
    #[value(name = "1-topic-1-partition-1kb")]
    OneTopicOnePartition,
    /// 1 topic × 100 partitions × 1 KiB.
    #[value(name = "1-topic-100-partitions-1kb")]
    OneTopicHundredPartitions,
    /// 10 topics × 10 partitions × 1 KiB.
    #[value(name = "10-topics-10-partitions-1kb")]
    TenTopicsTenPartitions,
}

/// What a preset fixes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OmbShape {
    pub topics: usize,
    pub partitions: i32,
    pub message_bytes: usize,
    /// Producers and consumers (one of each per topic).
    pub clients: usize,
}

impl OmbPreset {
    pub fn name(self) -> &'static str {
        match self {
            OmbPreset::OneTopicOnePartition => "1-topic-1-partition-1kb",
            OmbPreset::OneTopicHundredPartitions => "1-topic-100-partitions-1kb",
            OmbPreset::TenTopicsTenPartitions => "10-topics-10-partitions-1kb",
        }
    }

    pub fn shape(self) -> OmbShape {
        let (topics, partitions) = match self {
            OmbPreset::OneTopicOnePartition => (1, 1),
            OmbPreset::OneTopicHundredPartitions => (1, 100),
            OmbPreset::TenTopicsTenPartitions => (10, 10),
        };
        OmbShape {
            topics,
            partitions,
            message_bytes: OMB_MESSAGE_BYTES,
            clients: topics,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn preset_names_match_their_clap_values_and_shapes() {
        for preset in OmbPreset::value_variants() {
            let value = preset.to_possible_value().map(|v| v.get_name().to_owned());
            assert_eq!(value.as_deref(), Some(preset.name()));
            let shape = preset.shape();
            let expected = format!(
                "{}-topic{}-{}-partition{}-1kb",
                shape.topics,
                if shape.topics > 1 { "s" } else { "" },
                shape.partitions,
                if shape.partitions > 1 { "s" } else { "" },
            );
            assert_eq!(preset.name(), expected);
            assert_eq!(shape.clients, shape.topics);
        }
    }
}
