//! Tests of the storage engine through its public contract.

mod basic;
