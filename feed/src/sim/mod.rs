//! The exchange simulator (being written).
