//! A real Redis Cluster for tests: three masters and three replicas, each a
//! `redis-server --cluster-enabled yes` on free ports of loopback, joined by
//! `redis-cli --cluster create`, killed on drop. Faults are the real ones:
//! a master SIGKILLed (its replica is promoted), a slot migrated.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use redis::Value;

use crate::redis_shards::SlotMap;
use crate::test_redis::{free_port, server_pid};

/// How long a master may be unreachable before its replica takes over.
pub const NODE_TIMEOUT_MS: u64 = 1000;

pub struct TestRedisCluster {
    nodes: BTreeMap<u16, Child>,
    /// Nodes stopped with SIGSTOP: running, but answering nobody.
    paused: BTreeSet<u16>,
    dir: PathBuf,
}

/// The slot of a key or a shard channel.
pub fn slot_of(name: &str) -> u16 {
    crate::redis_shards::slot_of(name.as_bytes())
}

impl TestRedisCluster {
    /// Starts six nodes, makes them a cluster of three masters with a
    /// replica each, and waits until every node sees every slot served.
    pub fn start() -> Self {
        let dir = std::env::temp_dir().join(format!("snakepit-redis-cluster-{}-{}", std::process::id(), free_port()));
        std::fs::create_dir_all(&dir).unwrap();
        let mut cluster = Self { nodes: BTreeMap::new(), paused: BTreeSet::new(), dir };
        for _ in 0..6 {
            cluster.spawn_node();
        }
        let addrs: Vec<String> = cluster.nodes.keys().map(|p| format!("127.0.0.1:{p}")).collect();
        let out = Command::new("redis-cli")
            .args(["--cluster", "create"])
            .args(&addrs)
            .args(["--cluster-replicas", "1", "--cluster-yes"])
            .output()
            .expect("redis-cli must be installed (apt-get install redis-tools)");
        assert!(out.status.success(), "redis-cli --cluster create: {}", String::from_utf8_lossy(&out.stdout));
        cluster.wait_until_ok(Duration::from_secs(20));
        cluster.wait_for_replicas(Duration::from_secs(20));
        cluster
    }

    /// Waits until every replica has its master's data.
    fn wait_for_replicas(&self, within: Duration) {
        let deadline = Instant::now() + within;
        for port in self.ports() {
            loop {
                let info = self
                    .on(port, redis::cmd("INFO").arg("replication"))
                    .ok()
                    .and_then(|v| redis::from_redis_value::<String>(v).ok())
                    .unwrap_or_default();
                if info.contains("role:master") || info.contains("master_link_status:up") {
                    break;
                }
                assert!(Instant::now() < deadline, "the replica at {port} never synced");
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    }

    /// Seed URLs of every node, comma-separated (`--redis-url`).
    pub fn urls(&self) -> String {
        self.nodes.keys().map(|p| format!("redis://127.0.0.1:{p}/")).collect::<Vec<_>>().join(",")
    }

    /// The ports of the nodes still running.
    pub fn ports(&self) -> Vec<u16> {
        self.nodes.keys().copied().collect()
    }

    fn spawn_node(&mut self) {
        for _ in 0..10 {
            let (port, bus) = (free_port(), free_port());
            if port == bus || self.nodes.contains_key(&port) {
                continue;
            }
            let conf = self.dir.join(format!("nodes-{port}.conf"));
            let mut child = Command::new("redis-server")
                .args(["--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
                .args(["--port", &port.to_string(), "--cluster-port", &bus.to_string()])
                .args(["--cluster-enabled", "yes", "--cluster-config-file", &conf.display().to_string()])
                // Each node its own file: a replica writes one on its sync,
                // and a node started later must not load another's data.
                .args(["--dbfilename", &format!("dump-{port}.rdb")])
                .args(["--cluster-node-timeout", &NODE_TIMEOUT_MS.to_string()])
                // A replica takes over however long ago it last heard its
                // master (a test kills masters seconds after the start).
                .args(["--cluster-replica-validity-factor", "0"])
                // The other shards serve on while one has no master.
                .args(["--cluster-require-full-coverage", "no"])
                .current_dir(&self.dir)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("redis-server must be installed (apt-get install redis-server)");
            let deadline = Instant::now() + Duration::from_secs(10);
            let mut ours = None;
            while Instant::now() < deadline && ours.is_none() {
                if let Ok(Some(_)) = child.try_wait() {
                    ours = Some(false);
                    break;
                }
                ours = server_pid(port).map(|pid| pid == child.id());
                if ours.is_none() {
                    std::thread::sleep(Duration::from_millis(20));
                }
            }
            if ours == Some(true) {
                self.nodes.insert(port, child);
                return;
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        panic!("a cluster node did not start on any of 10 free ports");
    }

    fn conn(port: u16) -> Option<redis::Connection> {
        let client = redis::Client::open(format!("redis://127.0.0.1:{port}/")).ok()?;
        let conn = client.get_connection_with_timeout(Duration::from_millis(500)).ok()?;
        conn.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
        Some(conn)
    }

    /// A command on the node at `port`.
    pub fn on(&self, port: u16, cmd: &mut redis::Cmd) -> redis::RedisResult<Value> {
        let mut conn = Self::conn(port).ok_or_else(|| redis::RedisError::from(std::io::Error::other("node down")))?;
        cmd.query(&mut conn)
    }

    /// The slot map as the node at `port` sees it.
    fn map_at(&self, port: u16) -> Option<SlotMap> {
        let reply = self.on(port, redis::cmd("CLUSTER").arg("SLOTS")).ok()?;
        SlotMap::parse(&reply, "127.0.0.1").ok()
    }

    /// The port of the master serving `slot`, as the live nodes agree.
    pub fn master_of(&self, slot: u16) -> u16 {
        self.master_of_opt(slot).expect("the slot is served")
    }

    /// The master serving `key`'s slot (a key or a shard channel).
    pub fn master_of_key(&self, key: &str) -> u16 {
        self.master_of(slot_of(key))
    }

    /// The masters' ports.
    pub fn masters(&self) -> Vec<u16> {
        let port = self.answering().next().expect("a live node");
        let map = self.map_at(port).expect("a slot map");
        map.masters().into_iter().map(|n| n.port).collect()
    }

    /// Waits until every live node reports `cluster_state:ok` and serves
    /// every slot with a live master, all agreeing.
    pub fn wait_until_ok(&self, within: Duration) {
        let deadline = Instant::now() + within;
        loop {
            if self.is_ok() {
                return;
            }
            assert!(Instant::now() < deadline, "the Redis Cluster did not settle in {within:?}");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Nodes that run and answer.
    fn answering(&self) -> impl Iterator<Item = u16> + '_ {
        self.nodes.keys().copied().filter(|p| !self.paused.contains(p))
    }

    fn is_ok(&self) -> bool {
        let mut first: Option<SlotMap> = None;
        for port in self.answering() {
            let Some(info) = self
                .on(port, redis::cmd("CLUSTER").arg("INFO"))
                .ok()
                .and_then(|v| redis::from_redis_value::<String>(v).ok())
            else {
                return false;
            };
            if !info.contains("cluster_state:ok") {
                return false;
            }
            let Some(map) = self.map_at(port) else { return false };
            if (0..crate::redis_shards::SLOTS)
                .step_by(97)
                .any(|s| map.node(s).is_none_or(|n| !self.nodes.contains_key(&n.port) || self.paused.contains(&n.port)))
            {
                return false;
            }
            match &first {
                None => first = Some(map),
                Some(f) if *f != map => return false,
                Some(_) => {}
            }
        }
        true
    }

    /// SIGKILLs the node at `port`.
    pub fn kill(&mut self, port: u16) {
        if let Some(mut c) = self.nodes.remove(&port) {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// SIGKILLs the master serving `slot` and waits until its replica has
    /// taken over (every slot served again); the killed master's port.
    pub fn fail_master_of(&mut self, slot: u16) -> u16 {
        let old = self.master_of(slot);
        self.kill(old);
        let deadline = Instant::now() + Duration::from_secs(30);
        while self.master_of_opt(slot) == Some(old) || !self.is_ok() {
            assert!(Instant::now() < deadline, "no replica took over from {old}: {}", self.nodes_text());
            std::thread::sleep(Duration::from_millis(50));
        }
        old
    }

    fn master_of_opt(&self, slot: u16) -> Option<u16> {
        let port = self.answering().next()?;
        self.map_at(port)?.node(slot).map(|n| n.port)
    }

    /// SIGSTOPs the master serving `slot` (its connections stay open,
    /// silent) and waits until its replica has taken over; its port.
    pub fn pause_master_of(&mut self, slot: u16) -> u16 {
        let old = self.master_of(slot);
        let pid = self.nodes.get(&old).expect("a running master").id();
        let stopped = Command::new("kill").args(["-STOP", &pid.to_string()]).status().expect("kill -STOP");
        assert!(stopped.success());
        self.paused.insert(old);
        let deadline = Instant::now() + Duration::from_secs(30);
        while self.master_of_opt(slot) == Some(old) || !self.is_ok() {
            assert!(Instant::now() < deadline, "no replica took over from the paused {old}");
            std::thread::sleep(Duration::from_millis(50));
        }
        old
    }

    /// `CLUSTER NODES` as an answering node sees it (for failure messages).
    fn nodes_text(&self) -> String {
        self.answering()
            .next()
            .and_then(|p| self.on(p, redis::cmd("CLUSTER").arg("NODES")).ok())
            .and_then(|v| redis::from_redis_value::<String>(v).ok())
            .unwrap_or_default()
    }

    fn node_id(&self, port: u16) -> String {
        redis::from_redis_value(self.on(port, redis::cmd("CLUSTER").arg("MYID")).expect("CLUSTER MYID")).unwrap()
    }

    /// Moves `slot`, keys and all, to the master at `to`, as `redis-cli
    /// --cluster reshard` moves each slot: IMPORTING and MIGRATING marks,
    /// MIGRATE of its keys, then the new owner told to every master.
    pub fn migrate_slot(&self, slot: u16, to: u16) {
        let from = self.master_of(slot);
        assert_ne!(from, to, "the slot is already there");
        let (from_id, to_id) = (self.node_id(from), self.node_id(to));
        self.on(to, redis::cmd("CLUSTER").arg("SETSLOT").arg(slot).arg("IMPORTING").arg(&from_id)).unwrap();
        self.on(from, redis::cmd("CLUSTER").arg("SETSLOT").arg(slot).arg("MIGRATING").arg(&to_id)).unwrap();
        loop {
            let keys: Vec<Vec<u8>> = match self.on(from, redis::cmd("CLUSTER").arg("GETKEYSINSLOT").arg(slot).arg(100))
            {
                Ok(v) => redis::from_redis_value(v).unwrap(),
                Err(e) => panic!("GETKEYSINSLOT: {e}"),
            };
            if keys.is_empty() {
                break;
            }
            let mut migrate = redis::cmd("MIGRATE");
            migrate.arg("127.0.0.1").arg(to).arg("").arg(0).arg(5000).arg("REPLACE").arg("KEYS").arg(&keys);
            self.on(from, &mut migrate).unwrap();
        }
        for port in [to, from].into_iter().chain(self.masters()) {
            let _ = self.on(port, redis::cmd("CLUSTER").arg("SETSLOT").arg(slot).arg("NODE").arg(&to_id));
        }
        self.wait_until_ok(Duration::from_secs(20));
        assert_eq!(self.master_of(slot), to);
    }
}

impl Drop for TestRedisCluster {
    fn drop(&mut self) {
        for (_, mut c) in std::mem::take(&mut self.nodes) {
            let _ = c.kill();
            let _ = c.wait();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
