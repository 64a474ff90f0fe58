//! produce (being written)
