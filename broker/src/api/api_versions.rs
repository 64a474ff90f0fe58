//! api_versions (being written)
