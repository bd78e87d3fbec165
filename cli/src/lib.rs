//! The flags both binaries take (clap, each with its `SNAKEPIT_*`
//! variable), kept out of the libraries: a library takes plain settings
//! (`GameSettings`, `RoomConfig`), and only a binary's `main` reads the
//! command line and the environment.
//!
//! [`game`]: the game and room settings (the room worker's, and the
//! standalone gateway's, which runs the rooms itself); [`redis`]: how to
//! reach Redis; [`seconds`]: durations given as seconds.

pub mod game;
pub mod redis;
pub mod seconds;

pub use game::{GameArgs, Preset};
pub use redis::RedisArgs;
pub use seconds::{SecondsError, secs, secs_or_zero};
