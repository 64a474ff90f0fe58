//! alter_configs (being written)
