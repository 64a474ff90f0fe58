//! create_partitions (being written)
