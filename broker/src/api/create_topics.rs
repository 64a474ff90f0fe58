//! create_topics (being written)
