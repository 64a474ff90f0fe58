//! Tests of the storage engine through its public contract, one file per concern.

mod basic;
mod compaction;
mod compaction_cleaner;
mod compaction_faults;
mod compaction_producers;
mod compaction_restarts;
mod concurrency;
mod durability;
mod fetch_read;
mod many_partitions;
mod model;
mod page_cache;
mod power_loss;
mod preallocation;
mod recovery;
mod recovery_mutation;
mod retention;
mod topic_deletion;
