//! Everything the gateway and the room workers agree on: the client protocol,
//! the messages they exchange over the bus, and the bus + store interface
//! with its in-memory implementation (standalone mode).
//!
//! The Redis implementation of the same interface lives beside it, so a
//! process picks its backend at start-up and the rest of the code is generic.

pub mod backend;
pub mod build_info;
#[doc(hidden)]
pub mod contract;
pub mod encode;
pub mod envelope;
pub mod ids;
#[doc(hidden)]
pub mod intercept;
pub mod keys;
pub mod listen;
pub mod memory;
pub mod process_metrics;
pub mod protocol;
pub mod redis_backend;
pub mod redis_metrics;
pub mod shutdown;
pub mod telemetry;
#[doc(hidden)]
pub mod test_redis;

pub use backend::{
    Backend, Bus, BusError, Lease, LeaseState, Ownership, RoomInfo, ScoreEntry, Seat, Session, SnapshotWrite, Store,
    Subscription,
};
pub use envelope::{ConnId, FrameKind, InputKind, Notice, OutFrame, RoomInput};
pub use ids::{PlayerId, RoomId};
pub use memory::MemoryBackend;
pub use redis_backend::RedisBackend;
