//! Snakepit's room worker: a room as an actor that steps its game (the
//! `snakepit-game` crate) at a fixed tick, and the host that claims and
//! runs many rooms under leases.

pub mod claim;
pub mod gateways;
pub mod host;
#[cfg(test)]
mod host_tests;
pub mod http;
pub mod metrics;
pub mod publisher;
pub mod rendezvous;
pub mod room;
#[cfg(test)]
mod slow_backend;
pub mod snapshot;
pub mod snapshot_writer;
pub mod supervise;

pub use host::{Host, HostConfig, HostFailed};
pub use metrics::WorkerMetrics;

pub use snakepit_game::{Game, GameSettings, RoomConfig};
