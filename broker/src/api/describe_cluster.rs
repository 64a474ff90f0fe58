//! describe_cluster (being written)
