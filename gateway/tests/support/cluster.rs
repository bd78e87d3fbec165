//! Real processes for cluster tests: `redis-server`, `room-worker` and
//! `gateway` binaries on free loopback ports, killed on drop.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::OnceLock;
use std::time::Duration;

use snakepit_bus::test_redis::TestRedis;
use snakepit_bus::test_redis_cluster::TestRedisCluster;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

use super::Client;

/// Fast settings for every process of a test cluster.
const GAME_ARGS: &[&str] = &[
    "--tick-rate",
    "20",
    "--digit-spawn-rate",
    "0",
    "--stone-spawn-rate",
    "0",
    "--resume-grace-secs",
    "3",
    "--snapshot-secs",
    "0.5",
    "--presence-timeout-secs",
    "2",
    "--seat-hold-secs",
    "3",
];

fn gateway_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_gateway"))
}

/// The `room-worker` binary beside the gateway's, built once, in the
/// gateway's own profile (so `cargo test --release` never runs a stale
/// release worker).
fn worker_bin() -> PathBuf {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT
        .get_or_init(|| {
            let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
            let dir = gateway_bin().parent().and_then(|d| d.file_name()).map(|d| d.to_string_lossy().into_owned());
            let profile = match dir.as_deref() {
                Some("debug") | None => "dev".to_string(),
                Some(other) => other.to_string(),
            };
            let status = std::process::Command::new(cargo)
                .args(["build", "-q", "-p", "snakepit-room-worker", "--bin", "room-worker", "--profile", &profile])
                .status()
                .expect("run cargo build");
            assert!(status.success(), "cannot build room-worker");
            gateway_bin().with_file_name("room-worker")
        })
        .clone()
}

fn log_file(name: &str) -> std::fs::File {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("cluster-logs");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::File::create(dir.join(format!("{name}.log"))).unwrap()
}

pub struct Proc {
    pub name: String,
    pub addr: SocketAddr,
    child: Child,
    /// A standalone gateway's temporary data folder, removed on drop.
    data: Option<tempfile::TempDir>,
}

/// A standalone gateway's flags with a fresh temporary data folder, unless
/// they name one: tests never write into the user's data folder.
fn with_data_dir(mut args: Vec<String>) -> (Vec<String>, Option<tempfile::TempDir>) {
    if args.iter().any(|a| a == "--data-dir" || a == "--no-data-dir") {
        return (args, None);
    }
    let dir = tempfile::tempdir().unwrap();
    args.extend(["--data-dir".to_string(), dir.path().to_string_lossy().into_owned()]);
    (args, Some(dir))
}

impl Proc {
    async fn spawn(name: &str, log: &str, bin: PathBuf, args: &[String]) -> Self {
        let mut child = Command::new(bin)
            .args(args)
            .env("RUST_LOG", "info")
            // Flags only: a cluster gateway refuses a data folder.
            .env_remove("SNAKEPIT_DATA_DIR")
            .stdout(Stdio::piped())
            .stderr(Stdio::from(log_file(log)))
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let mut lines = BufReader::new(stdout).lines();
        let line = tokio::time::timeout(Duration::from_secs(20), lines.next_line())
            .await
            .expect("process did not start in time")
            .unwrap()
            .expect("process exited");
        let addr = line.strip_prefix("listening on http://").expect("listening line").parse().unwrap();
        Self { name: name.into(), addr, child, data: None }
    }

    /// A standalone `gateway` (no Redis) with these flags (and a temporary
    /// `--data-dir` unless they give one); its log goes to
    /// `cluster-logs/<name>.log`.
    pub async fn standalone_gateway(name: &str, args: &[&str]) -> Self {
        let (args, data) = with_data_dir(args.iter().map(|a| a.to_string()).collect());
        let mut p = Self::spawn(name, name, gateway_bin(), &args).await;
        p.data = data;
        p
    }

    /// SIGKILL: the process dies without a word.
    pub async fn kill(&mut self) {
        let _ = self.child.kill().await;
    }

    /// SIGTERM, then wait for the exit; the exit status.
    pub async fn terminate(&mut self) -> std::process::ExitStatus {
        if let Some(pid) = self.child.id() {
            let _ = std::process::Command::new("kill").args(["-TERM", &pid.to_string()]).status();
        }
        tokio::time::timeout(Duration::from_secs(15), self.child.wait()).await.expect("exit in time").unwrap()
    }

    /// SIGTERM, without waiting.
    pub fn sigterm(&self) {
        if let Some(pid) = self.child.id() {
            let _ = std::process::Command::new("kill").args(["-TERM", &pid.to_string()]).status();
        }
    }

    /// Waits for the exit; the exit status.
    pub async fn wait_exit(&mut self, limit: Duration) -> std::process::ExitStatus {
        tokio::time::timeout(limit, self.child.wait()).await.expect("exit in time").unwrap()
    }

    /// Whether the process is still running.
    pub fn running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    pub async fn metrics(&self) -> String {
        http_get(self.addr, "/metrics").await
    }

    /// A metric's value summed over its series (0 if absent).
    pub async fn metric(&self, name: &str) -> f64 {
        let text = self.metrics().await;
        text.lines()
            .filter(|l| l.starts_with(name) && l[name.len()..].starts_with([' ', '{']))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum()
    }
}

/// A standalone gateway process (no Redis), with the fast game settings.
pub async fn standalone_gateway() -> Proc {
    let mut args: Vec<String> = ["--listen", "127.0.0.1:0"].map(String::from).into();
    args.extend(GAME_ARGS.iter().map(|a| a.to_string()));
    let (args, data) = with_data_dir(args);
    let mut p = Proc::spawn("standalone", &format!("standalone-{}", std::process::id()), gateway_bin(), &args).await;
    p.data = data;
    p
}

pub async fn http_get(addr: SocketAddr, path: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let Ok(mut s) = tokio::net::TcpStream::connect(addr).await else { return String::new() };
    let req = format!("GET {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n");
    if s.write_all(req.as_bytes()).await.is_err() {
        return String::new();
    }
    let mut buf = Vec::new();
    let _ = s.read_to_end(&mut buf).await;
    String::from_utf8_lossy(&buf).to_string()
}

/// The Redis a test cluster runs on: one server, or a Redis Cluster.
pub trait RedisUnderTest {
    /// How a process reaches it.
    fn args(&self) -> Vec<String>;
    /// A name for the log files of the processes on it.
    fn tag(&self) -> String;
}

impl RedisUnderTest for TestRedis {
    fn args(&self) -> Vec<String> {
        let mut args = vec!["--redis-url".to_string(), self.url()];
        if let Some(ca) = self.ca_file() {
            args.extend(["--redis-ca-file".to_string(), ca.display().to_string()]);
        }
        args
    }

    fn tag(&self) -> String {
        self.port.to_string()
    }
}

impl RedisUnderTest for TestRedisCluster {
    fn args(&self) -> Vec<String> {
        vec!["--redis-url".to_string(), self.urls(), "--redis-cluster".to_string()]
    }

    fn tag(&self) -> String {
        format!("rc{}", self.ports()[0])
    }
}

pub struct Cluster<R: RedisUnderTest = TestRedis> {
    pub redis: R,
    pub workers: Vec<Proc>,
    pub gateways: Vec<Proc>,
    /// Game flags of every process: the fast defaults, some overridden.
    game: Vec<String>,
}

impl Cluster<TestRedisCluster> {
    /// A cluster on a Redis Cluster of three masters and three replicas.
    pub async fn start_sharded(workers: usize, gateways: usize) -> Self {
        let redis = tokio::task::spawn_blocking(TestRedisCluster::start).await.unwrap();
        Self::start_on(redis, workers, gateways, &[]).await
    }
}

impl Cluster<TestRedis> {
    pub async fn start(workers: usize, gateways: usize) -> Self {
        Self::start_with(workers, gateways, &[]).await
    }

    /// A cluster whose processes take `game` flags (`--flag value` pairs)
    /// in place of the fast defaults' own.
    pub async fn start_with(workers: usize, gateways: usize, game: &[(&str, &str)]) -> Self {
        Self::start_on(TestRedis::start(), workers, gateways, game).await
    }

    /// A cluster whose Redis speaks only TLS and wants a password, as a
    /// managed Redis does: every process gets `rediss://user:pass@...` and
    /// `--redis-ca-file`.
    pub async fn start_tls(workers: usize, gateways: usize) -> Self {
        Self::start_on(TestRedis::start_tls(), workers, gateways, &[]).await
    }

    pub async fn redis(&self) -> redis::aio::MultiplexedConnection {
        let client = match self.redis.ca_file() {
            None => redis::Client::open(self.redis.url()).unwrap(),
            Some(_) => {
                let _ = rustls::crypto::ring::default_provider().install_default();
                let certs = redis::TlsCertificates { client_tls: None, root_cert: Some(self.redis.ca_pem()) };
                redis::Client::build_with_tls(self.redis.url(), certs).unwrap()
            }
        };
        client.get_multiplexed_async_connection().await.unwrap()
    }

    /// `worker:epoch` of a room's lease, if held.
    pub async fn lease(&self, room: &str) -> Option<String> {
        let mut r = self.redis().await;
        redis::cmd("GET").arg(format!("snakepit:room:{{{room}}}:lease")).query_async(&mut r).await.unwrap()
    }

    /// The epoch of a room's lease, if held.
    pub async fn epoch(&self, room: &str) -> Option<u64> {
        self.lease(room).await?.rsplit_once(':')?.1.parse().ok()
    }

    /// Seats taken in `room` by the directory (`None`: not listed).
    pub async fn seats(&self, room: &str) -> Option<u64> {
        let mut r = self.redis().await;
        let score: Option<f64> =
            redis::cmd("ZSCORE").arg("snakepit:rooms").arg(room).query_async(&mut r).await.unwrap();
        score.map(|s| s as u64)
    }

    /// The index of the worker that holds `room`.
    pub async fn owner(&self, room: &str) -> usize {
        let lease = self.lease(room).await.expect("room has an owner");
        let id = lease.rsplit_once(':').unwrap().0.to_string();
        self.workers.iter().position(|w| w.name == id).expect("owner is one of ours")
    }
}

impl<R: RedisUnderTest> Cluster<R> {
    async fn start_on(redis: R, workers: usize, gateways: usize, game: &[(&str, &str)]) -> Self {
        let mut args: Vec<(String, String)> =
            GAME_ARGS.chunks(2).map(|kv| (kv[0].to_string(), kv[1].to_string())).collect();
        for (flag, value) in game {
            args.retain(|(f, _)| f != flag);
            args.push((flag.to_string(), value.to_string()));
        }
        let game = args.into_iter().flat_map(|(f, v)| [f, v]).collect();
        let mut c = Self { redis, workers: Vec::new(), gateways: Vec::new(), game };
        for i in 0..workers {
            c.add_worker(&format!("w{}", i + 1)).await;
        }
        for _ in 0..gateways {
            c.add_gateway().await;
        }
        // Workers announce themselves within their first round.
        for w in &c.workers {
            wait_until(Duration::from_secs(10), || async { http_get(w.addr, "/readyz").await.contains("200 OK") })
                .await;
        }
        c
    }

    pub async fn add_worker(&mut self, id: &str) {
        let mut args = self.redis_args();
        args.extend(["--listen", "127.0.0.1:0", "--worker-id", id].map(String::from));
        if !self.game.iter().any(|a| a == "--lease-secs") {
            args.extend(["--lease-secs", "1.5"].map(String::from));
        }
        args.extend(["--shutdown-grace-secs", "5"].map(String::from));
        args.extend(self.game.iter().cloned());
        let p = Proc::spawn(id, &format!("{}-{id}", self.redis.tag()), worker_bin(), &args).await;
        self.workers.push(p);
    }

    pub async fn add_gateway(&mut self) {
        let args = self.redis_args();
        self.add_gateway_on(args).await;
    }

    /// A gateway that reaches Redis at `url` (a proxy in front of this
    /// cluster's, say).
    pub async fn add_gateway_via(&mut self, url: &str) {
        self.add_gateway_on(vec!["--redis-url".to_string(), url.to_string()]).await;
    }

    async fn add_gateway_on(&mut self, mut args: Vec<String>) {
        args.extend(["--listen", "127.0.0.1:0", "--presence-secs", "0.5"].map(String::from));
        // Of the game flags, a cluster gateway uses only these (it warns
        // about the others).
        for kv in self.game.chunks(2) {
            if ["--max-players", "--seat-hold-secs", "--preset"].contains(&kv[0].as_str()) {
                args.extend(kv.iter().cloned());
            }
        }
        let name = format!("g{}", self.gateways.len() + 1);
        let p = Proc::spawn(&name, &format!("{}-{name}", self.redis.tag()), gateway_bin(), &args).await;
        self.gateways.push(p);
    }

    /// How a process reaches this cluster's Redis.
    fn redis_args(&self) -> Vec<String> {
        self.redis.args()
    }

    pub async fn client(&self, gateway: usize) -> Client {
        Client::connect(self.gateways[gateway].addr).await
    }
}

pub async fn wait_until<F, Fut>(limit: Duration, mut f: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + limit;
    while tokio::time::Instant::now() < deadline {
        if f().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("condition not met within {limit:?}");
}
