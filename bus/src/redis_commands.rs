//! The command connection of the Redis backend: to one Redis (a
//! `ConnectionManager`, which reconnects) or to a Redis Cluster (the redis
//! crate's cluster client, which routes each command by its keys' slot and
//! follows `MOVED` and `ASK`). Both are one `ConnectionLike`, so every
//! command and script is written once.

use std::sync::{Arc, RwLock};

use redis::aio::{ConnectionLike, ConnectionManager};
use redis::cluster::ClusterClient;
use redis::cluster_async::ClusterConnection;
use redis::{Cmd, Pipeline, RedisFuture, Value};

use crate::backend::BusError;

/// Where Redis is: one server, or a Redis Cluster reached through seed
/// nodes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Topology {
    #[default]
    Single,
    Cluster,
}

/// The cluster client's connection, renewed when the slot map changed
/// under it: the client reads the map again on `MOVED` or a broken link,
/// but not when a master stops answering (paused, partitioned) and its
/// replica takes over, so its commands to that shard would time out for
/// as long as the old master stays silent.
#[derive(Clone)]
pub(crate) struct ClusterCommands {
    inner: Arc<ClusterInner>,
}

struct ClusterInner {
    client: ClusterClient,
    current: RwLock<ClusterConnection>,
    renewing: tokio::sync::Mutex<()>,
}

impl ClusterCommands {
    pub(crate) async fn connect(client: ClusterClient) -> Result<Self, BusError> {
        let current = RwLock::new(client.get_async_connection().await?);
        Ok(Self { inner: Arc::new(ClusterInner { client, current, renewing: Default::default() }) })
    }

    /// The connection to use now.
    pub(crate) fn current(&self) -> ClusterConnection {
        self.inner.current.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// A new connection, on the slot map as it is now; commands already
    /// under way finish on the old one.
    pub(crate) async fn renew(&self) -> Result<(), BusError> {
        let _one = self.inner.renewing.lock().await;
        let fresh = self.inner.client.get_async_connection().await?;
        *self.inner.current.write().unwrap_or_else(|e| e.into_inner()) = fresh;
        Ok(())
    }
}

/// One command connection, as of now.
#[derive(Clone)]
pub(crate) enum Commands {
    Single(ConnectionManager),
    Cluster(ClusterConnection),
}

impl ConnectionLike for Commands {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Self::Single(c) => c.req_packed_command(cmd),
            Self::Cluster(c) => c.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        cmd: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Self::Single(c) => c.req_packed_commands(cmd, offset, count),
            Self::Cluster(c) => c.req_packed_commands(cmd, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Self::Single(c) => c.get_db(),
            Self::Cluster(c) => c.get_db(),
        }
    }
}
