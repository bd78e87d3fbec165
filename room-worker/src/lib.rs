//! Snakepit's room worker: the game rules, a room as an actor that steps
//! its world at a fixed tick, and the host that runs many rooms.

pub mod claim;
pub mod frame;
pub mod game;
#[cfg(test)]
mod game_tests;
pub mod grid;
pub mod host;
#[cfg(test)]
mod host_tests;
pub mod http;
pub mod metrics;
pub mod publisher;
pub mod rendezvous;
pub mod robot;
pub mod room;
pub mod settings;
pub mod settings_args;
#[cfg(test)]
mod slow_backend;
pub mod snapshot;
pub mod supervise;

pub use game::Game;
pub use host::{Host, HostConfig};
pub use metrics::WorkerMetrics;
pub use settings::GameSettings;
