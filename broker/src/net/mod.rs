//! The Kafka TCP server (being written).
