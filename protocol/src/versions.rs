//! The supported-versions table. (Being written.)
