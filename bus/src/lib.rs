//! The bus and store between gateways and room workers: the interface
//! ([`backend`]), the messages on it ([`envelope`]), every key and channel
//! name ([`keys`]), and its two implementations: in memory for the
//! standalone mode ([`memory`]) and on Redis for a cluster
//! ([`redis_backend`], with its Lua scripts in `src/scripts/`).
//!
//! A process picks its backend at start-up; the rest of the code is generic
//! over [`Backend`]. With the `test-support` feature, the contract suite
//! every backend must pass, an intercepting backend and a throwaway
//! `redis-server` serve the tests of the crates above.

pub mod backend;
pub mod batches;
#[cfg(feature = "test-support")]
pub mod contract;
pub mod envelope;
pub mod handler;
#[cfg(feature = "test-support")]
pub mod intercept;
pub mod keys;
pub mod memory;
pub mod panic_message;
mod pubsub_router;
pub mod queue;
pub mod redis_backend;
mod redis_commands;
mod redis_inputs;
pub mod redis_metrics;
mod redis_shard_subscriptions;
mod redis_shards;
mod redis_subscriptions;
mod scripts;
#[cfg(feature = "test-support")]
pub mod test_redis;
#[cfg(feature = "test-support")]
pub mod test_redis_cluster;

pub use backend::{
    Backend, Bus, BusError, Lease, LeaseState, Ownership, RoomInfo, ScoreEntry, Seat, Session, SnapshotSave,
    SnapshotWrite, Store, Subscription,
};
pub use envelope::{ConnId, FrameKind, InputKind, Notice, OutFrame, RoomInput};
pub use handler::Handler;
pub use memory::MemoryBackend;
pub use redis_backend::{RedisBackend, Topology};
pub use snakepit_protocol::{PlayerId, RoomId};
