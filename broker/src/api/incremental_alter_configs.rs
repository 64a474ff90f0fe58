//! incremental_alter_configs (being written)
