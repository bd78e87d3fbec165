//! The in-memory backend of the standalone mode: the same semantics as the
//! Redis one (fire-and-forget pub/sub with bounded subscriber queues, keys
//! with TTL, an atomic directory), inside one process.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::sync::watch;
use tokio::time::Instant;

use bytes::Bytes;

use crate::backend::{
    BusError, Lease, LeaseState, Ownership, RoomInfo, ScoreEntry, Seat, Session, SnapshotSave, SnapshotWrite,
    Subscription,
};
use crate::envelope::{Notice, OutFrame, RoomInput};
use crate::handler::Handler;
use crate::keys::Keys;
use crate::queue;
use crate::{Bus, Store};
use snakepit_protocol::ids::{MAX_PLAYER_ID, PlayerId, RoomId};

/// Queue length of one subscription; a subscriber further behind loses
/// messages, as a Redis client over its output buffer would be cut off.
const SUBSCRIBER_QUEUE: usize = 1024;

#[derive(Clone, Default)]
pub struct MemoryBackend {
    inner: Arc<Inner>,
}

#[derive(Default)]
struct Inner {
    keys: Keys,
    inputs: Topics<RoomInput>,
    outputs: Topics<OutFrame>,
    notices: Topics<Notice>,
    state: Mutex<State>,
    /// Counts the changes of the top scores table: the standalone mode
    /// saves them to disk when it moves ([`MemoryBackend::watch_scores`]).
    scores_changed: watch::Sender<u64>,
    /// Subscription links "lost" by [`MemoryBackend::lose_link`] (tests).
    link_losses: std::sync::atomic::AtomicU64,
}

#[derive(Default)]
struct State {
    rooms: HashMap<RoomId, Listed>,
    sessions: HashMap<String, (Session, Instant)>,
    scores: HashMap<String, ScoreEntry>,
    workers: HashMap<String, Instant>,
    leases: HashMap<RoomId, (Lease, Instant)>,
    /// The last epoch handed out, for any room: one counter keeps epochs
    /// unique without a key per room (nothing here outlives the process).
    last_epoch: u64,
    /// The last person's id handed out.
    last_player: i64,
    /// Each room's snapshot: its epoch, its place under that epoch, the data.
    snapshots: HashMap<RoomId, (u64, u64, Bytes)>,
    /// The store's generation, picked by its first reader (see
    /// [`Store::generation`]): nothing here is lost while the process
    /// lives, so it never changes but in tests ([`MemoryBackend::lose_data`]).
    generation: Option<u64>,
}

/// A room in the directory: its seats, each held until an instant.
struct Listed {
    capacity: u16,
    seats: HashMap<PlayerId, Instant>,
}

impl Listed {
    fn new(capacity: u16) -> Self {
        Self { capacity, seats: HashMap::new() }
    }

    fn info(&self, id: &RoomId) -> RoomInfo {
        RoomInfo { id: id.clone(), players: self.seats.len() as u16, capacity: self.capacity }
    }

    fn free(&self) -> bool {
        self.seats.len() < usize::from(self.capacity)
    }
}

impl State {
    /// Drops the seats whose hold ran out.
    fn expire_seats(&mut self, now: Instant) {
        for room in self.rooms.values_mut() {
            room.seats.retain(|_, until| *until > now);
        }
    }
}

/// One subscriber of a channel: a queue, or a handler that takes each
/// message as it is published.
enum Sink<T> {
    Queue(queue::Sender<T>),
    Handler(Handler<T>),
}

impl<T> Sink<T> {
    fn is_open(&self) -> bool {
        match self {
            Self::Queue(tx) => !tx.is_closed(),
            Self::Handler(h) => h.is_open(),
        }
    }

    /// Whether the subscriber took the message.
    fn take(&self, msg: T) -> bool {
        match self {
            Self::Queue(tx) => tx.try_send(msg).is_ok(),
            Self::Handler(h) => h.deliver(msg),
        }
    }
}

struct Topics<T> {
    channels: Mutex<HashMap<String, Vec<Sink<T>>>>,
}

impl<T> Default for Topics<T> {
    fn default() -> Self {
        Self { channels: Mutex::new(HashMap::new()) }
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding one of these locks cannot leave the maps in a
    // state worse than a lost message, so poisoning is ignored.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl<T: Clone> Topics<T> {
    fn publish(&self, channel: &str, msg: T) -> usize {
        let mut channels = lock(&self.channels);
        let Some(subs) = channels.get_mut(channel) else {
            return 0;
        };
        subs.retain(Sink::is_open);
        let mut delivered = 0;
        for s in subs.iter() {
            if s.take(msg.clone()) {
                delivered += 1;
            }
        }
        if subs.is_empty() {
            channels.remove(channel);
        }
        delivered
    }

    /// Subscribers still listening on `channel`.
    fn subscribers(&self, channel: &str) -> usize {
        let mut channels = lock(&self.channels);
        let Some(subs) = channels.get_mut(channel) else { return 0 };
        subs.retain(Sink::is_open);
        subs.len()
    }

    fn subscribe(&self, channel: String) -> Subscription<T> {
        let (tx, rx) = queue::channel(SUBSCRIBER_QUEUE);
        lock(&self.channels).entry(channel).or_default().push(Sink::Queue(tx));
        Subscription::new(rx)
    }

    fn subscribe_with(&self, channel: String, handler: Handler<T>) {
        lock(&self.channels).entry(channel).or_default().push(Sink::Handler(handler));
    }
}

impl MemoryBackend {
    pub fn new() -> Self {
        Self::default()
    }

    fn state(&self) -> MutexGuard<'_, State> {
        lock(&self.inner.state)
    }

    /// A counter that moves whenever a submitted score changes the top
    /// scores table (a better score for a name, or a new name).
    pub fn watch_scores(&self) -> watch::Receiver<u64> {
        self.inner.scores_changed.subscribe()
    }

    /// Forgets every key, as a Redis that restarted with no data does
    /// (subscriptions stay: a Redis client subscribes again by itself).
    #[cfg(feature = "test-support")]
    pub fn lose_data(&self) {
        *self.state() = State::default();
    }

    /// Counts a loss of the subscription link, as a Redis client sees one
    /// when the server restarts (see `Ownership::link_losses`).
    #[cfg(feature = "test-support")]
    pub fn lose_link(&self) {
        self.inner.link_losses.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }
}

impl Bus for MemoryBackend {
    async fn publish_input(&self, room: &RoomId, input: RoomInput) -> Result<usize, BusError> {
        Ok(self.inner.inputs.publish(&self.inner.keys.room_in(room), input))
    }

    async fn subscribe_input(&self, room: &RoomId) -> Result<Subscription<RoomInput>, BusError> {
        Ok(self.inner.inputs.subscribe(self.inner.keys.room_in(room)))
    }

    async fn publish_output(&self, room: &RoomId, frame: OutFrame) -> Result<usize, BusError> {
        Ok(self.inner.outputs.publish(&self.inner.keys.room_out(room), frame))
    }

    async fn subscribe_output(&self, room: &RoomId) -> Result<Subscription<OutFrame>, BusError> {
        Ok(self.inner.outputs.subscribe(self.inner.keys.room_out(room)))
    }

    async fn subscribe_output_with(&self, room: &RoomId, handler: Handler<OutFrame>) -> Result<(), BusError> {
        self.inner.outputs.subscribe_with(self.inner.keys.room_out(room), handler);
        Ok(())
    }

    async fn publish_outputs(&self, frames: Vec<(RoomId, OutFrame)>) -> Result<(), BusError> {
        let mut channel = String::new();
        for (room, frame) in frames {
            channel.clear();
            self.inner.keys.write_room_out(&mut channel, &room);
            self.inner.outputs.publish(&channel, frame);
        }
        Ok(())
    }

    async fn publish_notice(&self, notice: Notice) -> Result<usize, BusError> {
        Ok(self.inner.notices.publish(&self.inner.keys.notices(), notice))
    }

    async fn subscribe_notices(&self) -> Result<Subscription<Notice>, BusError> {
        Ok(self.inner.notices.subscribe(self.inner.keys.notices()))
    }
}

impl Store for MemoryBackend {
    async fn take_seat(
        &self,
        room: Option<&RoomId>,
        player: PlayerId,
        capacity: u16,
        hold: Duration,
    ) -> Result<Seat, BusError> {
        let mut state = self.state();
        let now = Instant::now();
        state.expire_seats(now);
        if let Some(id) = room {
            let created = !state.rooms.contains_key(id);
            let r = state.rooms.entry(id.clone()).or_insert_with(|| Listed::new(capacity));
            if !r.seats.contains_key(&player) && !r.free() {
                return Ok(Seat::Full);
            }
            r.seats.insert(player, now + hold);
            return Ok(Seat::Taken { room: id.clone(), created });
        }
        let fullest = state
            .rooms
            .iter_mut()
            .filter(|(_, r)| r.free())
            .max_by(|(a_id, a), (b_id, b)| a.seats.len().cmp(&b.seats.len()).then_with(|| b_id.cmp(a_id)));
        if let Some((id, r)) = fullest {
            r.seats.insert(player, now + hold);
            return Ok(Seat::Taken { room: id.clone(), created: false });
        }
        let id = loop {
            let id = RoomId::random();
            if !state.rooms.contains_key(&id) {
                break id;
            }
        };
        let mut r = Listed::new(capacity);
        r.seats.insert(player, now + hold);
        state.rooms.insert(id.clone(), r);
        Ok(Seat::Taken { room: id, created: true })
    }

    async fn release_seat(&self, room: &RoomId, player: PlayerId) -> Result<(), BusError> {
        if let Some(r) = self.state().rooms.get_mut(room) {
            r.seats.remove(&player);
        }
        Ok(())
    }

    async fn confirm_seats(
        &self,
        room: &RoomId,
        players: &[PlayerId],
        highest_id: PlayerId,
        hold: Duration,
    ) -> Result<(), BusError> {
        let mut state = self.state();
        state.last_player = state.last_player.max(highest_id.0.min(MAX_PLAYER_ID));
        let until = Instant::now() + hold;
        if let Some(r) = state.rooms.get_mut(room) {
            for p in players {
                r.seats.insert(*p, until);
            }
        }
        Ok(())
    }

    async fn rooms(&self, limit: usize) -> Result<Vec<RoomInfo>, BusError> {
        let mut state = self.state();
        state.expire_seats(Instant::now());
        let mut rooms: Vec<RoomInfo> = state.rooms.iter().map(|(id, r)| r.info(id)).collect();
        rooms.sort_by(|a, b| b.players.cmp(&a.players).then_with(|| a.id.cmp(&b.id)));
        rooms.truncate(limit);
        Ok(rooms)
    }

    async fn room(&self, room: &RoomId) -> Result<Option<RoomInfo>, BusError> {
        let mut state = self.state();
        state.expire_seats(Instant::now());
        Ok(state.rooms.get(room).map(|r| r.info(room)))
    }

    async fn ensure_room(&self, room: &RoomId, capacity: u16) -> Result<(), BusError> {
        self.state().rooms.entry(room.clone()).or_insert_with(|| Listed::new(capacity));
        Ok(())
    }

    async fn retire_room_if_empty(&self, room: &RoomId) -> Result<bool, BusError> {
        let mut state = self.state();
        state.expire_seats(Instant::now());
        match state.rooms.get(room) {
            Some(r) if r.seats.is_empty() => {
                state.rooms.remove(room);
                Ok(true)
            }
            Some(_) => Ok(false),
            None => Ok(true),
        }
    }

    async fn put_session(&self, token: &str, session: &Session, ttl: Duration) -> Result<(), BusError> {
        let mut state = self.state();
        let now = Instant::now();
        state.sessions.retain(|_, (_, expiry)| *expiry > now);
        state.sessions.insert(token.to_owned(), (session.clone(), now + ttl));
        Ok(())
    }

    async fn session(&self, token: &str) -> Result<Option<Session>, BusError> {
        let state = self.state();
        Ok(state.sessions.get(token).filter(|(_, expiry)| *expiry > Instant::now()).map(|(s, _)| s.clone()))
    }

    async fn submit_score(&self, entry: ScoreEntry) -> Result<(), BusError> {
        let changed = {
            let mut state = self.state();
            match state.scores.get(&entry.name) {
                Some(best) if best.score >= entry.score => false,
                _ => {
                    state.scores.insert(entry.name.clone(), entry);
                    true
                }
            }
        };
        if changed {
            self.inner.scores_changed.send_modify(|n| *n += 1);
        }
        Ok(())
    }

    async fn top_scores(&self, n: usize) -> Result<Vec<ScoreEntry>, BusError> {
        let mut all: Vec<ScoreEntry> = self.state().scores.values().cloned().collect();
        all.sort_by(|a, b| b.score.cmp(&a.score).then_with(|| a.name.cmp(&b.name)));
        all.truncate(n);
        Ok(all)
    }

    async fn new_player_id(&self) -> Result<PlayerId, BusError> {
        let mut state = self.state();
        if state.last_player >= MAX_PLAYER_ID {
            return Err(BusError::Unavailable("player ids exhausted".into()));
        }
        state.last_player += 1;
        Ok(PlayerId(state.last_player))
    }

    async fn generation(&self) -> Result<u64, BusError> {
        Ok(*self.state().generation.get_or_insert_with(|| uuid::Uuid::new_v4().as_u128() as u64))
    }

    async fn ping(&self) -> Result<(), BusError> {
        Ok(())
    }
}

impl Ownership for MemoryBackend {
    async fn heartbeat(&self, worker: &str, ttl: Duration) -> Result<(), BusError> {
        self.state().workers.insert(worker.to_owned(), Instant::now() + ttl);
        Ok(())
    }

    async fn withdraw(&self, worker: &str) -> Result<(), BusError> {
        self.state().workers.remove(worker);
        Ok(())
    }

    async fn live_workers(&self) -> Result<Vec<String>, BusError> {
        let mut state = self.state();
        let now = Instant::now();
        state.workers.retain(|_, expiry| *expiry > now);
        let mut live: Vec<String> = state.workers.keys().cloned().collect();
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
        let mut state = self.state();
        let now = Instant::now();
        if state.leases.get(room).is_some_and(|(_, expiry)| *expiry > now) {
            return Ok(None);
        }
        state.last_epoch = state.last_epoch.max(min_epoch) + 1;
        let lease = Lease { room: room.clone(), worker: worker.to_owned(), epoch: state.last_epoch };
        state.leases.insert(room.clone(), (lease.clone(), now + ttl));
        Ok(Some(lease))
    }

    async fn renew_leases(&self, leases: &[Lease], ttl: Duration) -> Result<Vec<LeaseState>, BusError> {
        let mut state = self.state();
        let now = Instant::now();
        Ok(leases
            .iter()
            .map(|lease| match state.leases.get_mut(&lease.room) {
                Some((held, expiry)) if *expiry > now => {
                    if held == lease {
                        *expiry = now + ttl;
                        LeaseState::Held
                    } else {
                        LeaseState::Lost
                    }
                }
                _ => LeaseState::Missing,
            })
            .collect())
    }

    async fn release_lease(&self, lease: &Lease) -> Result<(), BusError> {
        let mut state = self.state();
        if state.leases.get(&lease.room).is_some_and(|(held, _)| held == lease) {
            state.leases.remove(&lease.room);
        }
        Ok(())
    }

    async fn save_snapshot(&self, save: SnapshotSave) -> Result<SnapshotWrite, BusError> {
        let SnapshotSave { lease, seq, data } = save;
        let mut state = self.state();
        let now = Instant::now();
        let stored = state.snapshots.get(&lease.room).map(|(epoch, seq, _)| (*epoch, *seq));
        let newer = stored.is_some_and(|(epoch, _)| epoch > lease.epoch);
        let later = stored.is_some_and(|(epoch, stored_seq)| epoch == lease.epoch && stored_seq >= seq);
        Ok(match state.leases.get(&lease.room).filter(|(_, expiry)| *expiry > now) {
            Some((held, _)) if *held == lease && later => SnapshotWrite::Outdated,
            Some((held, _)) if *held == lease && !newer => {
                state.snapshots.insert(lease.room.clone(), (lease.epoch, seq, data));
                SnapshotWrite::Saved
            }
            None if !newer => SnapshotWrite::Missing,
            _ => SnapshotWrite::Lost,
        })
    }

    async fn load_snapshot(&self, room: &RoomId) -> Result<Option<(u64, Bytes)>, BusError> {
        Ok(self.state().snapshots.get(room).map(|(epoch, _, data)| (*epoch, data.clone())))
    }

    async fn drop_room(&self, lease: &Lease) -> Result<bool, BusError> {
        let mut state = self.state();
        let now = Instant::now();
        let held = state.leases.get(&lease.room).is_some_and(|(held, expiry)| held == lease && *expiry > now);
        if held {
            state.leases.remove(&lease.room);
            state.snapshots.remove(&lease.room);
        }
        Ok(held)
    }

    async fn lease_holders(&self, rooms: &[RoomId]) -> Result<Vec<Option<String>>, BusError> {
        let state = self.state();
        let now = Instant::now();
        Ok(rooms
            .iter()
            .map(|room| {
                state.leases.get(room).filter(|(_, expiry)| *expiry > now).map(|(lease, _)| lease.worker.clone())
            })
            .collect())
    }

    async fn be_present(&self, worker: &str) -> Result<Subscription<Notice>, BusError> {
        Ok(self.inner.notices.subscribe(self.inner.keys.presence(worker)))
    }

    fn link_losses(&self) -> u64 {
        self.inner.link_losses.load(std::sync::atomic::Ordering::Relaxed)
    }

    async fn present(&self, workers: &[String]) -> Result<Vec<bool>, BusError> {
        Ok(workers.iter().map(|w| self.inner.notices.subscribers(&self.inner.keys.presence(w)) > 0).collect())
    }

    async fn break_leases(&self, worker: &str, rooms: &[RoomId]) -> Result<usize, BusError> {
        let mut state = self.state();
        let now = Instant::now();
        let mut broken = 0;
        for room in rooms {
            if state.leases.get(room).is_some_and(|(lease, expiry)| lease.worker == worker && *expiry > now) {
                state.leases.remove(room);
                broken += 1;
            }
        }
        Ok(broken)
    }
}
