//! describe_configs (being written)
