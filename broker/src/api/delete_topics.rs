//! delete_topics (being written)
