//! How a process reaches Redis, beside its URL (which the gateway may
//! leave out, for the standalone mode, and the worker may not).

use std::path::PathBuf;

#[derive(Clone, Debug, clap::Args)]
pub struct RedisArgs {
    /// PEM certificate authority to trust for a rediss:// URL (default: the
    /// system's). User and password go in the URL: rediss://user:pass@host:6380/
    #[arg(long, env = "SNAKEPIT_REDIS_CA_FILE")]
    pub redis_ca_file: Option<PathBuf>,
    /// Redis is a Redis Cluster: --redis-url lists one or more seed nodes,
    /// comma-separated (redis://10.0.0.1:6379,redis://10.0.0.2:6379).
    /// Pub/sub is sharded (SSUBSCRIBE, Redis 7); each shard carries its
    /// own rooms' traffic.
    #[arg(long, env = "SNAKEPIT_REDIS_CLUSTER")]
    pub redis_cluster: bool,
    /// Prefix of every Redis key and channel (clusters sharing one Redis).
    #[arg(long, env = "SNAKEPIT_REDIS_PREFIX", default_value = "snakepit")]
    pub redis_prefix: String,
}

impl RedisArgs {
    /// The certificate authority's PEM, if one is given.
    pub fn ca(&self) -> std::io::Result<Option<Vec<u8>>> {
        self.redis_ca_file.as_ref().map(std::fs::read).transpose()
    }
}
