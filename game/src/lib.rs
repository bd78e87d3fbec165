//! Snakepit's game, with no I/O and no clock: the rules ([`game`], on the
//! field of [`grid`]), robot snakes' steering ([`robot`]), the settings of a
//! game and of the room around it ([`settings`], [`room_config`]), and the
//! frames a game's tick becomes ([`frame`]). The same seed and the same
//! inputs give the same world; a room of the worker drives it.

pub mod frame;
pub mod game;
#[cfg(test)]
mod game_tests;
pub mod grid;
pub mod robot;
pub mod room_config;
pub mod settings;

pub use game::Game;
pub use room_config::RoomConfig;
pub use settings::GameSettings;
