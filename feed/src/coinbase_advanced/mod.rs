//! Coinbase Advanced Trade (placeholder until written).
