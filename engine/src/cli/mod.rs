//! The `tickwire` subcommands that are more than wiring: `import`, `normalize`, `record`,
//! `replay` and `watch`.

pub mod import;
pub mod normalize;
pub mod record;
pub mod replay;
pub mod watch;
