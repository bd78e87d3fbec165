//! Snakepit's room worker: the game rules, a room as an actor that steps
//! its world at a fixed tick, and the host that runs many rooms.

pub mod frame;
pub mod game;
pub mod grid;
pub mod host;
pub mod metrics;
pub mod room;
pub mod settings;

pub use game::Game;
pub use host::{Host, HostConfig};
pub use metrics::WorkerMetrics;
pub use settings::GameSettings;
