//! The `tickwire` subcommands that are more than wiring: `normalize`, `replay` and `watch`.

pub mod normalize;
pub mod replay;
pub mod watch;
