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

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{AsyncCommands, IntoConnectionInfo, ProtocolVersion, Script};
use serde::Serialize;
use tokio::sync::mpsc;
use tokio_util::sync::{CancellationToken, DropGuard};
use tracing::warn;

use crate::backend::{
    BusError, Lease, LeaseState, Ownership, RoomInfo, ScoreEntry, Seat, Session, SnapshotWrite, Subscription,
};
use crate::envelope::{Notice, OutFrame, RoomInput};
use crate::keys::Keys;
use crate::redis_metrics::{Link, RedisMetrics, watch_commands};
use crate::redis_subscriptions::Subscriptions;
use crate::scripts::{
    ACQUIRE_LEASE, BREAK_LEASES, CONFIRM_SEATS, DROP_ROOM, GENERATION, HEARTBEAT, LIST_ROOMS, LIVE_WORKERS,
    RELEASE_LEASE, RELEASE_SEAT, RENEW_LEASES, RETIRE_ROOM, ROOM_INFO, SAVE_SNAPSHOT, SUBMIT_SCORE, TAKE_SEAT,
};
use crate::{Bus, Store};
use snakepit_protocol::ids::{MAX_PLAYER_ID, PlayerId, RoomId};

/// Best scores kept in Redis; the lists shown are much shorter.
const SCORES_KEPT: usize = 1000;
/// How long a snapshot outlives its room's last write.
const SNAPSHOT_TTL_MS: u64 = 24 * 3600 * 1000;

/// A client for `url` speaking RESP3 (push messages for subscriptions),
/// over TLS for `rediss://`, trusting `ca_pem` if given.
fn client(url: &str, ca_pem: Option<&[u8]>) -> Result<redis::Client, BusError> {
    let info = url.into_connection_info()?;
    let tls = matches!(info.addr(), redis::ConnectionAddr::TcpTls { .. });
    let resp3 = info.redis_settings().clone().set_protocol(ProtocolVersion::RESP3);
    let info = info.set_redis_settings(resp3);
    if tls {
        // The process-wide TLS crypto provider; a second call keeps the first.
        let _ = rustls::crypto::ring::default_provider().install_default();
    }
    match ca_pem {
        None => Ok(redis::Client::open(info)?),
        Some(_) if !tls => Err(BusError::Unavailable("a CA certificate needs a rediss:// (TLS) URL".into())),
        Some(pem) => {
            let certs = redis::TlsCertificates { client_tls: None, root_cert: Some(pem.to_vec()) };
            Ok(redis::Client::build_with_tls(info, certs)?)
        }
    }
}

impl From<redis::RedisError> for BusError {
    fn from(e: redis::RedisError) -> Self {
        BusError::Unavailable(e.to_string())
    }
}

#[derive(Clone)]
pub struct RedisBackend {
    keys: Keys,
    cmd: ConnectionManager,
    subs: Subscriptions,
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

    /// As [`connect_with_ca`](Self::connect_with_ca), counting into
    /// `metrics`: reconnects and resubscribes, and `up` from a ping every
    /// 2 s that ends when `stop` is cancelled or the backend is dropped.
    pub async fn connect_with_metrics(
        url: &str,
        prefix: &str,
        ca_pem: Option<&[u8]>,
        metrics: &RedisMetrics,
        stop: &CancellationToken,
    ) -> Result<Self, BusError> {
        Self::open(url, prefix, ca_pem, Some(metrics), stop).await
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
            tokio::spawn(watch_commands(cmd.clone(), cmd_push_rx, m.clone(), watching.clone()));
        }
        Ok(Self { keys: Keys::new(prefix), cmd, subs, _stop: Arc::new([routing.drop_guard(), watching.drop_guard()]) })
    }

    /// Connects (see [`connect_with_metrics`](Self::connect_with_metrics)),
    /// retrying every second until it works or `stop` is cancelled (then
    /// `None`): a process may start before its Redis.
    /// Checks what no retry can fix: a URL that does not parse, a CA file
    /// with no certificate in it, a CA without TLS. A process gives up at
    /// start on these rather than retrying for ever.
    pub fn check_settings(url: &str, ca_pem: Option<&[u8]>) -> Result<(), BusError> {
        if let Some(pem) = ca_pem {
            let text = String::from_utf8_lossy(pem);
            if !text.contains("-----BEGIN CERTIFICATE-----") {
                return Err(BusError::Unavailable("the CA file holds no PEM certificate".into()));
            }
        }
        client(url, ca_pem).map(|_| ())
    }

    pub async fn connect_retrying(
        url: &str,
        prefix: &str,
        ca_pem: Option<&[u8]>,
        metrics: &RedisMetrics,
        stop: &CancellationToken,
    ) -> Option<Self> {
        loop {
            match Self::connect_with_metrics(url, prefix, ca_pem, metrics, stop).await {
                Ok(b) => return Some(b),
                Err(e) => warn!(error = %e, "cannot reach Redis; retrying"),
            }
            tokio::select! {
                _ = stop.cancelled() => return None,
                _ = tokio::time::sleep(Duration::from_secs(1)) => {}
            }
        }
    }

    fn conn(&self) -> ConnectionManager {
        self.cmd.clone()
    }

    /// A call of one of the seat scripts, with their keys.
    fn seats<'a>(&self, script: &'a Script) -> redis::ScriptInvocation<'a> {
        let mut call = script.prepare_invoke();
        call.key(self.keys.directory()).key(self.keys.capacities()).key(self.keys.seats());
        call
    }

    async fn publish<T: Serialize>(&self, channel: String, msg: &T) -> Result<usize, BusError> {
        let bytes = encode(msg)?;
        Ok(self.conn().publish(channel, bytes).await?)
    }
}

fn encode<T: Serialize>(msg: &T) -> Result<Vec<u8>, BusError> {
    rmp_serde::to_vec(msg).map_err(|e| BusError::Codec(e.to_string()))
}

impl Bus for RedisBackend {
    async fn publish_input(&self, room: &RoomId, input: RoomInput) -> Result<usize, BusError> {
        self.publish(self.keys.room_in(room), &input).await
    }

    async fn subscribe_input(&self, room: &RoomId) -> Result<Subscription<RoomInput>, BusError> {
        self.subs.subscribe(self.keys.room_in(room)).await
    }

    async fn publish_output(&self, room: &RoomId, frame: OutFrame) -> Result<usize, BusError> {
        self.publish(self.keys.room_out(room), &frame).await
    }

    async fn publish_outputs(&self, frames: Vec<(RoomId, OutFrame)>) -> Result<(), BusError> {
        if frames.is_empty() {
            return Ok(());
        }
        let mut pipe = redis::pipe();
        for (room, frame) in &frames {
            pipe.cmd("PUBLISH").arg(self.keys.room_out(room)).arg(encode(frame)?).ignore();
        }
        pipe.query_async::<()>(&mut self.conn()).await?;
        Ok(())
    }

    async fn subscribe_output(&self, room: &RoomId) -> Result<Subscription<OutFrame>, BusError> {
        self.subs.subscribe(self.keys.room_out(room)).await
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
        let mut call = RENEW_LEASES.prepare_invoke();
        call.arg(ttl.as_millis() as u64);
        for lease in leases {
            call.key(self.keys.lease(&lease.room)).arg(lease_value(lease));
        }
        let held: Vec<i64> = call.invoke_async(&mut self.conn()).await?;
        Ok(held
            .into_iter()
            .map(|h| match h {
                1 => LeaseState::Held,
                0 => LeaseState::Lost,
                _ => LeaseState::Missing,
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

    async fn save_snapshot(&self, lease: &Lease, data: Bytes) -> Result<SnapshotWrite, BusError> {
        let saved: i64 = SAVE_SNAPSHOT
            .key(self.keys.lease(&lease.room))
            .key(self.keys.snapshot(&lease.room))
            .arg(lease_value(lease))
            .arg(lease.epoch)
            .arg(data.as_ref())
            .arg(SNAPSHOT_TTL_MS)
            .invoke_async(&mut self.conn())
            .await?;
        Ok(match saved {
            1 => SnapshotWrite::Saved,
            -1 => SnapshotWrite::Missing,
            _ => SnapshotWrite::Lost,
        })
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
        // be refused on Redis Cluster: one GET per key, pipelined into one
        // round trip.
        let mut pipe = redis::pipe();
        for room in rooms {
            pipe.get(self.keys.lease(room));
        }
        let values: Vec<Option<String>> = pipe.query_async(&mut self.conn()).await?;
        // A lease value is `worker:epoch`.
        Ok(values.into_iter().map(|v| v.map(|v| worker_of(&v).to_owned())).collect())
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
        let counts: HashMap<String, i64> =
            redis::cmd("PUBSUB").arg("NUMSUB").arg(&channels).query_async(&mut self.conn()).await?;
        Ok(channels.iter().map(|c| counts.get(c).copied().unwrap_or(0) > 0).collect())
    }

    async fn break_leases(&self, worker: &str, rooms: &[RoomId]) -> Result<usize, BusError> {
        if rooms.is_empty() {
            return Ok(0);
        }
        let mut call = BREAK_LEASES.prepare_invoke();
        for room in rooms {
            call.key(self.keys.lease(room));
        }
        Ok(call.arg(worker).invoke_async(&mut self.conn()).await?)
    }
}
