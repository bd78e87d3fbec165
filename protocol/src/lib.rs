//! Snakepit's client protocol, the one the original browser client speaks
//! (see docs/protocol.md): what a client sends, parsed strictly
//! ([`client`]); the frames it is sent, written straight into one buffer
//! ([`frame_writer`]); the lists it is shown ([`listing`]); and the ids of
//! players and rooms ([`ids`]).
//!
//! With the `test-support` feature, [`client_world`] is the world as a
//! client keeps it, for tests.
//!
//! Both the gateway (which parses) and the room worker (which writes the
//! frames) depend on it; it knows nothing of the bus between them.

pub mod client;
#[cfg(any(test, feature = "test-support"))]
pub mod client_world;
pub mod frame_writer;
pub mod ids;
pub mod listing;

pub use client::{ClientMessage, Direction, ProtocolError};
pub use frame_writer::{FrameWriter, error_frame};
pub use ids::{PlayerId, RoomId};
pub use listing::{RoomInfo, ScoreEntry};
