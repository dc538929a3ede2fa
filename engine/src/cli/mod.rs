//! The `tickwire` subcommands that are more than wiring: `normalize` and `watch`.

pub mod normalize;
pub mod watch;
