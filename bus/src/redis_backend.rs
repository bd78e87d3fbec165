//! The Redis backend: pub/sub for room inputs, frames and notices; keys with
//! TTL for sessions, leases and worker liveness; sorted sets for the room
//! directory and top scores. Multi-key decisions (a seat, a lease, a fenced
//! snapshot) are Lua scripts (one file each in `src/scripts/`), so they are
//! atomic.
//!
//! Commands go through a `ConnectionManager`, which reconnects;
//! subscriptions go through a second one (`redis_subscriptions.rs`). Both
//! connections' losses, returns and resubscriptions are counted (see
//! [`redis_metrics`](crate::redis_metrics)).
//!
//! On a Redis Cluster ([`Topology::Cluster`]) the same keys and scripts
//! run through the redis crate's cluster client, pub/sub is sharded
//! (`SPUBLISH`, and `SSUBSCRIBE` in `redis_shard_subscriptions.rs`), and
//! what spans rooms is split by slot: a pipeline or a script never mixes
//! slots. Every room's keys and channels carry its `{room}` hash tag; the
//! global ones (directory, seats, workers, presence, notices, top scores,
//! the id counter, the generation) carry `{prefix}`, one chosen slot (see
//! [`Keys::clustered`]).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::future::join_all;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::cluster::ClusterClient;
use redis::cluster_routing::{Route, RoutingInfo, SingleNodeRoutingInfo, SlotAddr};
use redis::{AsyncCommands, ConnectionInfo, IntoConnectionInfo, ProtocolVersion, Script};
use serde::Serialize;
use tokio::sync::mpsc;
use tokio_util::sync::{CancellationToken, DropGuard};
use tracing::warn;

use crate::backend::{
    BusError, Lease, LeaseState, Ownership, RoomInfo, ScoreEntry, Seat, Session, SnapshotSave, SnapshotWrite,
    Subscription,
};
use crate::envelope::{Notice, OutFrame, RoomInput};
use crate::handler::Handler;
use crate::keys::Keys;
use crate::pubsub_router::{Route as BusRoute, deliver_one_or_many_to, deliver_to, deliver_with};
pub use crate::redis_commands::Topology;
use crate::redis_commands::{ClusterCommands, Commands};
use crate::redis_inputs::InputBatcher;
use crate::redis_metrics::{Link, RedisMetrics, watch_commands};
use crate::redis_shard_subscriptions::{NodeClients, ShardSubscriptions};
use crate::redis_shards::slot_of;
use crate::redis_subscriptions::Subscriptions;
use crate::scripts::{
    ACQUIRE_LEASE, BREAK_LEASES, CONFIRM_SEATS, DROP_ROOM, GENERATION, HEARTBEAT, LIST_ROOMS, LIVE_WORKERS,
    RELEASE_LEASE, RELEASE_SEAT, RENEW_LEASES, RETIRE_ROOM, ROOM_INFO, SAVE_SNAPSHOTS, SUBMIT_SCORE, TAKE_SEAT,
};
use crate::{Bus, Store};
use snakepit_protocol::ids::{MAX_PLAYER_ID, PlayerId, RoomId};

/// Best scores kept in Redis; the lists shown are much shorter.
const SCORES_KEPT: usize = 1000;
/// How long a snapshot outlives its room's last write.
const SNAPSHOT_TTL_MS: u64 = 24 * 3600 * 1000;

/// `url` as connection settings speaking RESP3 (push messages for
/// subscriptions); for `rediss://`, with the process's TLS provider set.
fn resp3_info(url: &str, ca_pem: Option<&[u8]>) -> Result<ConnectionInfo, BusError> {
    let info = url.trim().into_connection_info()?;
    let tls = matches!(info.addr(), redis::ConnectionAddr::TcpTls { .. });
    let resp3 = info.redis_settings().clone().set_protocol(ProtocolVersion::RESP3);
    if tls {
        // The process-wide TLS crypto provider; a second call keeps the first.
        let _ = rustls::crypto::ring::default_provider().install_default();
    } else if ca_pem.is_some() {
        return Err(BusError::Unavailable("a CA certificate needs a rediss:// (TLS) URL".into()));
    }
    Ok(info.set_redis_settings(resp3))
}

/// A client for `url` (see [`resp3_info`]), trusting `ca_pem` if given.
fn client(url: &str, ca_pem: Option<&[u8]>) -> Result<redis::Client, BusError> {
    let info = resp3_info(url, ca_pem)?;
    match ca_pem {
        None => Ok(redis::Client::open(info)?),
        Some(pem) => {
            let certs = redis::TlsCertificates { client_tls: None, root_cert: Some(pem.to_vec()) };
            Ok(redis::Client::build_with_tls(info, certs)?)
        }
    }
}

/// On a Redis Cluster the prefix becomes a hash tag (`{prefix}`), and a
/// room's names carry theirs after it: a prefix that is empty or holds a
/// brace would put the global names on several slots, or every room on one.
pub fn check_cluster_prefix(prefix: &str) -> Result<(), BusError> {
    if prefix.is_empty() || prefix.contains(['{', '}']) {
        return Err(BusError::Unavailable(format!(
            "on a Redis Cluster the key prefix must be non-empty and hold no brace (got {prefix:?})"
        )));
    }
    Ok(())
}

/// The seed nodes of a Redis Cluster: `urls`, comma-separated.
fn seeds(urls: &str, ca_pem: Option<&[u8]>) -> Result<Vec<ConnectionInfo>, BusError> {
    let seeds: Vec<ConnectionInfo> =
        urls.split(',').filter(|u| !u.trim().is_empty()).map(|u| resp3_info(u, ca_pem)).collect::<Result<_, _>>()?;
    if seeds.is_empty() {
        return Err(BusError::Unavailable("no Redis Cluster seed node given".into()));
    }
    Ok(seeds)
}

/// A cluster client for `seeds`: commands time out and give up quickly
/// (a tick waits on them), as the single connection does.
fn cluster_client(seeds: Vec<ConnectionInfo>, ca_pem: Option<&[u8]>) -> Result<ClusterClient, BusError> {
    let mut builder = ClusterClient::builder(seeds)
        .use_protocol(ProtocolVersion::RESP3)
        .connection_timeout(Duration::from_secs(1))
        .response_timeout(Duration::from_secs(2))
        .retries(3)
        .min_retry_wait(50)
        .max_retry_wait(500);
    if let Some(pem) = ca_pem {
        builder = builder.certs(redis::TlsCertificates { client_tls: None, root_cert: Some(pem.to_vec()) });
    }
    Ok(builder.build()?)
}

impl From<redis::RedisError> for BusError {
    fn from(e: redis::RedisError) -> Self {
        BusError::Unavailable(e.to_string())
    }
}

/// Where commands go: one Redis's connection, or the cluster's current one.
#[derive(Clone)]
enum CommandSource {
    Single(ConnectionManager),
    Cluster(ClusterCommands),
}

/// The subscription side: plain pub/sub on one Redis, sharded on a cluster.
#[derive(Clone)]
enum Subs {
    Single(Subscriptions),
    Sharded(ShardSubscriptions),
}

impl Subs {
    async fn subscribe<T: serde::de::DeserializeOwned + Send + 'static>(
        &self,
        channel: String,
    ) -> Result<Subscription<T>, BusError> {
        let (deliver, subscription) = deliver_to::<T>();
        self.subscribe_route(channel, deliver).await?;
        Ok(subscription)
    }

    /// Messages of `T` one by one on `one` and several together on
    /// `many`, in one subscription (see [`deliver_one_or_many_to`]).
    async fn subscribe_one_or_many<T: serde::de::DeserializeOwned + Send + 'static>(
        &self,
        one: String,
        many: String,
    ) -> Result<Subscription<T>, BusError> {
        let (deliver_one, deliver_many, subscription) = deliver_one_or_many_to::<T>();
        self.subscribe_route(one, deliver_one).await?;
        self.subscribe_route(many, deliver_many).await?;
        Ok(subscription)
    }

    async fn subscribe_with<T: serde::de::DeserializeOwned + Send + 'static>(
        &self,
        channel: String,
        handler: Handler<T>,
    ) -> Result<(), BusError> {
        self.subscribe_route(channel, deliver_with(handler)).await
    }

    async fn subscribe_route(&self, channel: String, deliver: BusRoute) -> Result<(), BusError> {
        match self {
            Self::Single(s) => s.subscribe_route(channel, deliver).await,
            Self::Sharded(s) => s.subscribe_route(channel, deliver).await,
        }
    }

    fn losses(&self) -> u64 {
        match self {
            Self::Single(s) => s.losses(),
            Self::Sharded(s) => s.losses(),
        }
    }
}

#[derive(Clone)]
pub struct RedisBackend {
    keys: Keys,
    cmd: CommandSource,
    subs: Subs,
    /// Inputs to rooms go out in batches (see [`crate::redis_inputs`]).
    inputs: InputBatcher,
    /// Ends the backend's tasks when the last clone is dropped.
    _stop: Arc<[DropGuard; 2]>,
}

impl RedisBackend {
    /// Connects (both connections) to `url`, keys under `prefix`. A
    /// `rediss://` URL speaks TLS and trusts the system's certificate
    /// authorities; a user and password in the URL authenticate.
    pub async fn connect(url: &str, prefix: &str) -> Result<Self, BusError> {
        Self::connect_with_ca(url, prefix, None).await
    }

    /// As [`connect`](Self::connect), trusting only `ca_pem` (PEM
    /// certificates) for a `rediss://` URL: a managed Redis with a private
    /// certificate authority, or a self-signed one.
    pub async fn connect_with_ca(url: &str, prefix: &str, ca_pem: Option<&[u8]>) -> Result<Self, BusError> {
        Self::open(url, prefix, ca_pem, None, &CancellationToken::new()).await
    }

    /// Connects to a Redis Cluster through `urls` (seed nodes,
    /// comma-separated), keys under `prefix`.
    pub async fn connect_cluster(urls: &str, prefix: &str) -> Result<Self, BusError> {
        Self::open_cluster(urls, prefix, None, None, &CancellationToken::new()).await
    }

    /// As [`connect_with_ca`](Self::connect_with_ca), counting into
    /// `metrics`: reconnects and resubscribes, and `up` from a ping every
    /// 2 s that ends when `stop` is cancelled or the backend is dropped.
    pub async fn connect_with_metrics(
        url: &str,
        topology: Topology,
        prefix: &str,
        ca_pem: Option<&[u8]>,
        metrics: &RedisMetrics,
        stop: &CancellationToken,
    ) -> Result<Self, BusError> {
        match topology {
            Topology::Single => Self::open(url, prefix, ca_pem, Some(metrics), stop).await,
            Topology::Cluster => Self::open_cluster(url, prefix, ca_pem, Some(metrics), stop).await,
        }
    }

    async fn open_cluster(
        urls: &str,
        prefix: &str,
        ca_pem: Option<&[u8]>,
        metrics: Option<&RedisMetrics>,
        stop: &CancellationToken,
    ) -> Result<Self, BusError> {
        let seeds = seeds(urls, ca_pem)?;
        check_cluster_prefix(prefix)?;
        let nodes = NodeClients { seed: seeds[0].clone(), ca_pem: ca_pem.map(<[u8]>::to_vec) };
        let cmd = ClusterCommands::connect(cluster_client(seeds, ca_pem)?).await?;
        let routing = CancellationToken::new();
        let watching = stop.child_token();
        let resubscribes = metrics.map(|m| m.resubscribes.clone());
        let link = Link::new("subscriptions", metrics);
        let subs = ShardSubscriptions::start(cmd.clone(), nodes, prefix, link, resubscribes, routing.clone());
        if let Some(m) = metrics {
            // The cluster client reports no losses by push: pings only.
            let (_, no_pushes) = mpsc::unbounded_channel();
            let current = cmd.clone();
            tokio::spawn(watch_commands(move || current.current(), no_pushes, m.clone(), watching.clone()));
        }
        let current = cmd.clone();
        let inputs = InputBatcher::spawn(move || Commands::Cluster(current.current()), "SPUBLISH", true);
        Ok(Self {
            keys: Keys::clustered(prefix),
            inputs,
            cmd: CommandSource::Cluster(cmd),
            subs: Subs::Sharded(subs),
            _stop: Arc::new([routing.drop_guard(), watching.drop_guard()]),
        })
    }

    async fn open(
        url: &str,
        prefix: &str,
        ca_pem: Option<&[u8]>,
        metrics: Option<&RedisMetrics>,
        stop: &CancellationToken,
    ) -> Result<Self, BusError> {
        let client = client(url, ca_pem)?;
        let config = || {
            ConnectionManagerConfig::new()
                .set_connection_timeout(Some(Duration::from_secs(1)))
                .set_response_timeout(Some(Duration::from_secs(2)))
                .set_max_delay(Duration::from_millis(500))
                .set_number_of_retries(2)
        };
        // The command connection's pushes only say when it is lost.
        let (cmd_push_tx, cmd_push_rx) = mpsc::unbounded_channel();
        let cmd = client.get_connection_manager_with_config(config().set_push_sender(cmd_push_tx)).await?;
        let (push_tx, push_rx) = mpsc::unbounded_channel();
        let sub = client
            .get_connection_manager_with_config(config().set_push_sender(push_tx).set_automatic_resubscription())
            .await?;
        // Routing lives as long as the backend; the watch of the command
        // connection also ends with the process's `stop`.
        let routing = CancellationToken::new();
        let watching = stop.child_token();
        let resubscribes = metrics.map(|m| m.resubscribes.clone());
        let link = Link::new("subscriptions", metrics);
        let subs = Subscriptions::start(sub, push_rx, link, resubscribes, routing.clone());
        if let Some(m) = metrics {
            let manager = cmd.clone();
            tokio::spawn(watch_commands(move || manager.clone(), cmd_push_rx, m.clone(), watching.clone()));
        }
        let manager = cmd.clone();
        let inputs = InputBatcher::spawn(move || Commands::Single(manager.clone()), "PUBLISH", false);
        Ok(Self {
            keys: Keys::new(prefix),
            inputs,
            cmd: CommandSource::Single(cmd),
            subs: Subs::Single(subs),
            _stop: Arc::new([routing.drop_guard(), watching.drop_guard()]),
        })
    }

    /// Connects (see [`connect_with_metrics`](Self::connect_with_metrics)),
    /// retrying every second until it works or `stop` is cancelled (then
    /// `None`): a process may start before its Redis.
    /// Checks what no retry can fix: a URL that does not parse, a CA file
    /// with no certificate in it, a CA without TLS. A process gives up at
    /// start on these rather than retrying for ever.
    pub fn check_settings(url: &str, topology: Topology, ca_pem: Option<&[u8]>) -> Result<(), BusError> {
        if let Some(pem) = ca_pem {
            let text = String::from_utf8_lossy(pem);
            if !text.contains("-----BEGIN CERTIFICATE-----") {
                return Err(BusError::Unavailable("the CA file holds no PEM certificate".into()));
            }
        }
        match topology {
            Topology::Single => client(url, ca_pem).map(|_| ()),
            Topology::Cluster => seeds(url, ca_pem).and_then(|s| cluster_client(s, ca_pem)).map(|_| ()),
        }
    }

    /// As [`check_settings`](Self::check_settings), with the key prefix,
    /// which a Redis Cluster constrains (see [`check_cluster_prefix`]).
    pub fn check_settings_with_prefix(
        url: &str,
        topology: Topology,
        prefix: &str,
        ca_pem: Option<&[u8]>,
    ) -> Result<(), BusError> {
        Self::check_settings(url, topology, ca_pem)?;
        if topology == Topology::Cluster {
            check_cluster_prefix(prefix)?;
        }
        Ok(())
    }

    pub async fn connect_retrying(
        url: &str,
        topology: Topology,
        prefix: &str,
        ca_pem: Option<&[u8]>,
        metrics: &RedisMetrics,
        stop: &CancellationToken,
    ) -> Option<Self> {
        loop {
            match Self::connect_with_metrics(url, topology, prefix, ca_pem, metrics, stop).await {
                Ok(b) => return Some(b),
                Err(e) => warn!(error = %e, "cannot reach Redis; retrying"),
            }
            tokio::select! {
                _ = stop.cancelled() => return None,
                _ = tokio::time::sleep(Duration::from_secs(1)) => {}
            }
        }
    }

    fn conn(&self) -> Commands {
        match &self.cmd {
            CommandSource::Single(c) => Commands::Single(c.clone()),
            CommandSource::Cluster(c) => Commands::Cluster(c.current()),
        }
    }

    fn is_cluster(&self) -> bool {
        matches!(self.cmd, CommandSource::Cluster(_))
    }

    /// `keys` grouped by slot (all in one group on a single Redis), each
    /// with its index.
    fn by_slot(&self, keys: impl Iterator<Item = String>) -> Vec<(u16, Vec<(usize, String)>)> {
        let mut groups: HashMap<u16, Vec<(usize, String)>> = HashMap::new();
        for (i, key) in keys.enumerate() {
            let slot = if self.is_cluster() { slot_of(key.as_bytes()) } else { 0 };
            groups.entry(slot).or_default().push((i, key));
        }
        groups.into_iter().collect()
    }

    /// Calls `script` once per slot of `keys` (once in all on a single
    /// Redis), all at once; `args` adds each call's keys and arguments for
    /// its members (their index among `keys`, and the key). Each key's
    /// answer, in the order of `keys`: `None` where its slot did not answer
    /// (its shard is away). An error only if no slot answered.
    async fn script_per_slot(
        &self,
        script: &Script,
        keys: impl Iterator<Item = String>,
        args: impl Fn(&mut redis::ScriptInvocation<'_>, &[(usize, String)]),
    ) -> Result<Vec<Option<i64>>, BusError> {
        let groups = self.by_slot(keys);
        let calls = join_all(groups.iter().map(|(_, members)| {
            let mut call = script.prepare_invoke();
            args(&mut call, members);
            let mut conn = self.conn();
            async move { call.invoke_async::<Vec<i64>>(&mut conn).await }
        }))
        .await;
        if let Some(Err(e)) = calls.iter().find(|c| c.is_err())
            && calls.iter().all(Result::is_err)
        {
            return Err(BusError::Unavailable(e.to_string()));
        }
        let mut answers = vec![None; groups.iter().map(|(_, members)| members.len()).sum()];
        for ((_, members), answered) in groups.iter().zip(calls) {
            let Ok(answered) = answered else { continue };
            for (&(i, _), a) in members.iter().zip(answered) {
                answers[i] = Some(a);
            }
        }
        Ok(answers)
    }

    /// `PUBLISH`, or `SPUBLISH` (sharded) on a cluster.
    fn publish_command(&self) -> &'static str {
        if self.is_cluster() { "SPUBLISH" } else { "PUBLISH" }
    }

    /// A call of one of the seat scripts, with their keys.
    fn seats<'a>(&self, script: &'a Script) -> redis::ScriptInvocation<'a> {
        let mut call = script.prepare_invoke();
        call.key(self.keys.directory()).key(self.keys.capacities()).key(self.keys.seats());
        call
    }

    async fn publish<T: Serialize>(&self, channel: String, msg: &T) -> Result<usize, BusError> {
        let bytes = encode(msg)?;
        Ok(redis::cmd(self.publish_command()).arg(channel).arg(bytes).query_async(&mut self.conn()).await?)
    }
}

/// A PUBLISH (or SPUBLISH) of `bytes` on `channel`, its buffers allocated
/// once at their final size (added one by one, they grew three times).
pub(crate) fn publish_cmd(command: &str, channel: &str, bytes: &[u8]) -> redis::Cmd {
    let mut cmd = redis::Cmd::with_capacity(3, command.len() + channel.len() + bytes.len());
    cmd.arg(command).arg(channel).arg(bytes);
    cmd
}

fn encode<T: Serialize>(msg: &T) -> Result<Vec<u8>, BusError> {
    let mut bytes = Vec::new();
    encode_into(&mut bytes, msg)?;
    Ok(bytes)
}

/// [`encode`], appended to `bytes` (a buffer reused per frame).
fn encode_into<T: Serialize>(bytes: &mut Vec<u8>, msg: &T) -> Result<(), BusError> {
    rmp_serde::encode::write(bytes, msg).map_err(|e| BusError::Codec(e.to_string()))
}

impl Bus for RedisBackend {
    async fn publish_input(&self, room: &RoomId, input: RoomInput) -> Result<usize, BusError> {
        self.inputs.publish(self.keys.room_in(room), self.keys.room_in_batch(room), encode(&input)?).await
    }

    async fn subscribe_input(&self, room: &RoomId) -> Result<Subscription<RoomInput>, BusError> {
        // Inputs one by one, and those a gateway gathered for the room.
        self.subs.subscribe_one_or_many(self.keys.room_in(room), self.keys.room_in_batch(room)).await
    }

    async fn publish_output(&self, room: &RoomId, frame: OutFrame) -> Result<usize, BusError> {
        self.publish(self.keys.room_out(room), &frame).await
    }

    async fn publish_outputs(&self, frames: Vec<(RoomId, OutFrame)>) -> Result<(), BusError> {
        if frames.is_empty() {
            return Ok(());
        }
        // One pipeline per slot (all in one on a single Redis), sent at once.
        // A command copies its arguments: the channel name and the encoded
        // frame are written into two buffers reused for the whole batch.
        let mut pipes: HashMap<u16, redis::Pipeline> = HashMap::new();
        let (mut channel, mut bytes) = (String::new(), Vec::new());
        for (room, frame) in &frames {
            channel.clear();
            self.keys.write_room_out(&mut channel, room);
            bytes.clear();
            encode_into(&mut bytes, frame)?;
            let slot = if self.is_cluster() { slot_of(channel.as_bytes()) } else { 0 };
            let cmd = publish_cmd(self.publish_command(), &channel, &bytes);
            pipes.entry(slot).or_insert_with(|| redis::Pipeline::with_capacity(frames.len())).add_command(cmd).ignore();
        }
        let sent = join_all(pipes.into_values().map(|pipe| {
            let mut conn = self.conn();
            async move { pipe.query_async::<()>(&mut conn).await }
        }))
        .await;
        sent.into_iter().collect::<Result<Vec<()>, _>>()?;
        Ok(())
    }

    async fn subscribe_output(&self, room: &RoomId) -> Result<Subscription<OutFrame>, BusError> {
        self.subs.subscribe(self.keys.room_out(room)).await
    }

    async fn subscribe_output_with(&self, room: &RoomId, handler: Handler<OutFrame>) -> Result<(), BusError> {
        self.subs.subscribe_with(self.keys.room_out(room), handler).await
    }

    async fn publish_notice(&self, notice: Notice) -> Result<usize, BusError> {
        self.publish(self.keys.notices(), &notice).await
    }

    async fn subscribe_notices(&self) -> Result<Subscription<Notice>, BusError> {
        self.subs.subscribe(self.keys.notices()).await
    }
}

impl Store for RedisBackend {
    async fn take_seat(
        &self,
        room: Option<&RoomId>,
        player: PlayerId,
        capacity: u16,
        hold: Duration,
    ) -> Result<Seat, BusError> {
        let (id, created): (String, i64) = self
            .seats(&TAKE_SEAT)
            .arg(room.map(RoomId::as_str).unwrap_or(""))
            .arg(player.to_string())
            .arg(capacity)
            .arg(millis(hold))
            .arg(RoomId::random().as_str())
            .invoke_async(&mut self.conn())
            .await?;
        if id.is_empty() {
            return Ok(Seat::Full);
        }
        let room = RoomId::parse(&id).map_err(|_| BusError::Codec(format!("bad room id {id:?} in the directory")))?;
        Ok(Seat::Taken { room, created: created == 1 })
    }

    async fn release_seat(&self, room: &RoomId, player: PlayerId) -> Result<(), BusError> {
        self.seats(&RELEASE_SEAT)
            .arg(room.as_str())
            .arg(player.to_string())
            .invoke_async::<i64>(&mut self.conn())
            .await?;
        Ok(())
    }

    async fn confirm_seats(
        &self,
        room: &RoomId,
        players: &[PlayerId],
        highest_id: PlayerId,
        hold: Duration,
    ) -> Result<(), BusError> {
        let mut call = self.seats(&CONFIRM_SEATS);
        call.key(self.keys.player_ids()).arg(room.as_str()).arg(millis(hold)).arg(highest_id.0.clamp(0, MAX_PLAYER_ID));
        for p in players {
            call.arg(p.to_string());
        }
        call.invoke_async::<i64>(&mut self.conn()).await?;
        Ok(())
    }

    async fn rooms(&self, limit: usize) -> Result<Vec<RoomInfo>, BusError> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        let listed: Vec<(String, f64, Option<u16>)> =
            self.seats(&LIST_ROOMS).arg(limit.min(1 << 40) - 1).invoke_async(&mut self.conn()).await?;
        let mut rooms: Vec<RoomInfo> = listed
            .into_iter()
            .filter_map(|(id, players, capacity)| {
                Some(RoomInfo {
                    id: RoomId::parse(&id).ok()?,
                    players: players as u16,
                    capacity: capacity.unwrap_or(0),
                })
            })
            .collect();
        rooms.sort_by(|a, b| b.players.cmp(&a.players).then_with(|| a.id.cmp(&b.id)));
        Ok(rooms)
    }

    async fn room(&self, room: &RoomId) -> Result<Option<RoomInfo>, BusError> {
        let (players, capacity): (Option<f64>, Option<u16>) =
            self.seats(&ROOM_INFO).arg(room.as_str()).invoke_async(&mut self.conn()).await?;
        Ok(players.map(|p| RoomInfo { id: room.clone(), players: p as u16, capacity: capacity.unwrap_or(0) }))
    }

    async fn ensure_room(&self, room: &RoomId, capacity: u16) -> Result<(), BusError> {
        redis::pipe()
            .cmd("ZADD")
            .arg(self.keys.directory())
            .arg("NX")
            .arg(0)
            .arg(room.as_str())
            .ignore()
            .hset_nx(self.keys.capacities(), room.as_str(), capacity)
            .ignore()
            .query_async::<()>(&mut self.conn())
            .await?;
        Ok(())
    }

    async fn retire_room_if_empty(&self, room: &RoomId) -> Result<bool, BusError> {
        let retired: i64 = self.seats(&RETIRE_ROOM).arg(room.as_str()).invoke_async(&mut self.conn()).await?;
        Ok(retired == 1)
    }

    async fn put_session(&self, token: &str, session: &Session, ttl: Duration) -> Result<(), BusError> {
        let ms = ttl.as_millis().max(1) as u64;
        let _: () = self.conn().pset_ex(self.keys.session(token), encode(session)?, ms).await?;
        Ok(())
    }

    async fn session(&self, token: &str) -> Result<Option<Session>, BusError> {
        let raw: Option<Vec<u8>> = self.conn().get(self.keys.session(token)).await?;
        // A session this build cannot read (an older format) is no session:
        // the client is told its token is unknown and starts afresh, rather
        // than "busy" until the session expires.
        Ok(raw.and_then(|b| {
            rmp_serde::from_slice(&b).map_err(|e| warn!(error = %e, "unreadable session; treated as expired")).ok()
        }))
    }

    async fn submit_score(&self, entry: ScoreEntry) -> Result<(), BusError> {
        SUBMIT_SCORE
            .key(self.keys.top_scores())
            .key(self.keys.top_colours())
            .arg(&entry.name)
            .arg(entry.score)
            .arg(entry.colour)
            .arg(SCORES_KEPT)
            .invoke_async::<i64>(&mut self.conn())
            .await?;
        Ok(())
    }

    async fn new_player_id(&self) -> Result<PlayerId, BusError> {
        let id: i64 = self.conn().incr(self.keys.player_ids(), 1).await?;
        if !(1..=MAX_PLAYER_ID).contains(&id) {
            return Err(BusError::Codec(format!("player id counter out of range: {id}")));
        }
        Ok(PlayerId(id))
    }

    async fn top_scores(&self, n: usize) -> Result<Vec<ScoreEntry>, BusError> {
        if n == 0 {
            return Ok(Vec::new());
        }
        let mut conn = self.conn();
        let best: Vec<(String, f64)> = conn.zrevrange_withscores(self.keys.top_scores(), 0, n as isize - 1).await?;
        if best.is_empty() {
            return Ok(Vec::new());
        }
        let names: Vec<&str> = best.iter().map(|(n, _)| n.as_str()).collect();
        let colours: Vec<Option<u8>> =
            redis::cmd("HMGET").arg(self.keys.top_colours()).arg(&names).query_async(&mut conn).await?;
        let mut out: Vec<ScoreEntry> = best
            .iter()
            .zip(colours)
            .map(|((name, score), colour)| ScoreEntry {
                name: name.clone(),
                score: *score as u64,
                colour: colour.unwrap_or(0),
            })
            .collect();
        out.sort_by(|a, b| b.score.cmp(&a.score).then_with(|| a.name.cmp(&b.name)));
        Ok(out)
    }

    async fn generation(&self) -> Result<u64, BusError> {
        let candidate = uuid::Uuid::new_v4().as_u128() as u64;
        let present: String =
            GENERATION.key(self.keys.generation()).arg(candidate.to_string()).invoke_async(&mut self.conn()).await?;
        present.parse().map_err(|_| BusError::Codec(format!("bad store generation {present:?}")))
    }

    async fn ping(&self) -> Result<(), BusError> {
        let _: () = self.conn().ping().await?;
        Ok(())
    }
}

fn millis(d: Duration) -> u64 {
    d.as_millis().max(1) as u64
}

fn lease_value(lease: &Lease) -> String {
    format!("{}:{}", lease.worker, lease.epoch)
}

/// The worker part of a lease value (a worker id may itself hold colons).
fn worker_of(value: &str) -> &str {
    value.rsplit_once(':').map_or(value, |(worker, _)| worker)
}

impl Ownership for RedisBackend {
    async fn heartbeat(&self, worker: &str, ttl: Duration) -> Result<(), BusError> {
        HEARTBEAT
            .key(self.keys.workers())
            .arg(worker)
            .arg(ttl.as_millis() as u64)
            .invoke_async::<i64>(&mut self.conn())
            .await?;
        Ok(())
    }

    async fn withdraw(&self, worker: &str) -> Result<(), BusError> {
        let _: i64 = self.conn().zrem(self.keys.workers(), worker).await?;
        Ok(())
    }

    async fn live_workers(&self) -> Result<Vec<String>, BusError> {
        let mut live: Vec<String> = LIVE_WORKERS.key(self.keys.workers()).invoke_async(&mut self.conn()).await?;
        live.sort();
        Ok(live)
    }

    async fn acquire_lease(
        &self,
        room: &RoomId,
        worker: &str,
        ttl: Duration,
        min_epoch: u64,
    ) -> Result<Option<Lease>, BusError> {
        let epoch: u64 = ACQUIRE_LEASE
            .key(self.keys.lease(room))
            .key(self.keys.epoch(room))
            .arg(worker)
            .arg(ttl.as_millis() as u64)
            .arg(min_epoch)
            .arg(SNAPSHOT_TTL_MS)
            .invoke_async(&mut self.conn())
            .await?;
        Ok((epoch > 0).then(|| Lease { room: room.clone(), worker: worker.to_owned(), epoch }))
    }

    async fn renew_leases(&self, leases: &[Lease], ttl: Duration) -> Result<Vec<LeaseState>, BusError> {
        if leases.is_empty() {
            return Ok(Vec::new());
        }
        let answers = self
            .script_per_slot(&RENEW_LEASES, leases.iter().map(|l| self.keys.lease(&l.room)), |call, members| {
                call.arg(ttl.as_millis() as u64);
                for &(i, ref key) in members {
                    call.key(key).arg(lease_value(&leases[i]));
                }
            })
            .await?;
        // A slot that did not answer (its shard is away) leaves its leases
        // unknown; the others are renewed all the same.
        Ok(answers
            .into_iter()
            .map(|a| match a {
                Some(1) => LeaseState::Held,
                Some(0) => LeaseState::Lost,
                Some(_) => LeaseState::Missing,
                None => LeaseState::Unknown,
            })
            .collect())
    }

    async fn release_lease(&self, lease: &Lease) -> Result<(), BusError> {
        RELEASE_LEASE
            .key(self.keys.lease(&lease.room))
            .arg(lease_value(lease))
            .invoke_async::<i64>(&mut self.conn())
            .await?;
        Ok(())
    }

    fn snapshot_part(&self, room: &RoomId) -> u16 {
        if self.is_cluster() { slot_of(self.keys.lease(room).as_bytes()) } else { 0 }
    }

    async fn save_snapshot(&self, save: SnapshotSave) -> Result<SnapshotWrite, BusError> {
        let saved = self.save_snapshots(&[save]).await?;
        saved.into_iter().next().flatten().ok_or_else(|| BusError::Unavailable("snapshot not answered".into()))
    }

    async fn save_snapshots(&self, writes: &[SnapshotSave]) -> Result<Vec<Option<SnapshotWrite>>, BusError> {
        if writes.is_empty() {
            return Ok(Vec::new());
        }
        let answers = self
            .script_per_slot(&SAVE_SNAPSHOTS, writes.iter().map(|w| self.keys.lease(&w.lease.room)), |call, members| {
                call.arg(SNAPSHOT_TTL_MS);
                for &(i, ref key) in members {
                    let SnapshotSave { lease, seq, data } = &writes[i];
                    call.key(key).key(self.keys.snapshot(&lease.room));
                    call.arg(lease_value(lease)).arg(lease.epoch).arg(seq).arg(data.as_ref());
                }
            })
            .await?;
        // A slot that did not answer (its shard is away) leaves its
        // snapshots unwritten as far as anyone knows; the others stand.
        Ok(answers
            .into_iter()
            .map(|a| match a? {
                1 => Some(SnapshotWrite::Saved),
                2 => Some(SnapshotWrite::Outdated),
                -1 => Some(SnapshotWrite::Missing),
                0 => Some(SnapshotWrite::Lost),
                _ => None,
            })
            .collect())
    }

    async fn load_snapshot(&self, room: &RoomId) -> Result<Option<(u64, Bytes)>, BusError> {
        let (epoch, data): (Option<u64>, Option<Vec<u8>>) = redis::cmd("HMGET")
            .arg(self.keys.snapshot(room))
            .arg("epoch")
            .arg("data")
            .query_async(&mut self.conn())
            .await?;
        Ok(epoch.zip(data).map(|(e, d)| (e, Bytes::from(d))))
    }

    async fn drop_room(&self, lease: &Lease) -> Result<bool, BusError> {
        let dropped: i64 = DROP_ROOM
            .key(self.keys.lease(&lease.room))
            .key(self.keys.snapshot(&lease.room))
            .key(self.keys.epoch(&lease.room))
            .arg(lease_value(lease))
            .invoke_async(&mut self.conn())
            .await?;
        Ok(dropped == 1)
    }

    async fn lease_holders(&self, rooms: &[RoomId]) -> Result<Vec<Option<String>>, BusError> {
        if rooms.is_empty() {
            return Ok(Vec::new());
        }
        // Each lease key has its room's hash tag, so a multi-key MGET would
        // be refused on Redis Cluster: one GET per key, pipelined per slot.
        let groups = self.by_slot(rooms.iter().map(|r| self.keys.lease(r)));
        let replies = join_all(groups.iter().map(|(_, members)| {
            let mut pipe = redis::pipe();
            for (_, key) in members {
                pipe.get(key);
            }
            let mut conn = self.conn();
            async move { pipe.query_async::<Vec<Option<String>>>(&mut conn).await }
        }))
        .await;
        let mut holders = vec![None; rooms.len()];
        for ((_, members), values) in groups.iter().zip(replies) {
            for (&(i, _), v) in members.iter().zip(values?) {
                // A lease value is `worker:epoch`.
                holders[i] = v.map(|v| worker_of(&v).to_owned());
            }
        }
        Ok(holders)
    }

    async fn be_present(&self, worker: &str) -> Result<Subscription<Notice>, BusError> {
        self.subs.subscribe(self.keys.presence(worker)).await
    }

    fn link_losses(&self) -> u64 {
        self.subs.losses()
    }

    async fn present(&self, workers: &[String]) -> Result<Vec<bool>, BusError> {
        if workers.is_empty() {
            return Ok(Vec::new());
        }
        let channels: Vec<String> = workers.iter().map(|w| self.keys.presence(w)).collect();
        let counts: HashMap<String, i64> = match &self.cmd {
            CommandSource::Single(_) => {
                redis::cmd("PUBSUB").arg("NUMSUB").arg(&channels).query_async(&mut self.conn()).await?
            }
            CommandSource::Cluster(c) => {
                // Presence channels share the global slot: its master
                // alone counts their (sharded) subscribers.
                let slot = slot_of(channels[0].as_bytes());
                let asked = redis::cmd("PUBSUB").arg("SHARDNUMSUB").arg(&channels).clone();
                let route =
                    RoutingInfo::SingleNode(SingleNodeRoutingInfo::SpecificNode(Route::new(slot, SlotAddr::Master)));
                redis::from_redis_value(c.current().route_command(asked, route).await?)
                    .map_err(|e| BusError::Codec(e.to_string()))?
            }
        };
        Ok(channels.iter().map(|c| counts.get(c).copied().unwrap_or(0) > 0).collect())
    }

    async fn break_leases(&self, worker: &str, rooms: &[RoomId]) -> Result<usize, BusError> {
        if rooms.is_empty() {
            return Ok(0);
        }
        let groups = self.by_slot(rooms.iter().map(|r| self.keys.lease(r)));
        let broken = join_all(groups.iter().map(|(_, members)| {
            let mut call = BREAK_LEASES.prepare_invoke();
            for (_, key) in members {
                call.key(key);
            }
            call.arg(worker);
            let mut conn = self.conn();
            async move { call.invoke_async::<usize>(&mut conn).await }
        }))
        .await;
        broken.into_iter().try_fold(0, |sum, n| Ok(sum + n?))
    }
}
