//! metadata (being written)
