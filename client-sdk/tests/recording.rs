//! Recording tests (written below).
