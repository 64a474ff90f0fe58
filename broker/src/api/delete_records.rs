//! delete_records (being written)
