//! list_offsets (being written)
