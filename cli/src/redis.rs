//! How a process reaches Redis, beside its URL (which the gateway may
//! leave out, for the standalone mode, and the worker may not).

use std::path::PathBuf;

#[derive(Clone, Debug, clap::Args)]
pub struct RedisArgs {
    /// PEM certificate authority to trust for a rediss:// URL (default: the
    /// system's). User and password go in the URL: rediss://user:pass@host:6380/
    #[arg(long, env = "SNAKEPIT_REDIS_CA_FILE")]
    pub redis_ca_file: Option<PathBuf>,
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
