//! Fan-out of room frames to this gateway's members.
//!
//! One subscription per room that has local members. Its pump forwards each
//! frame, as the same bytes, to every member through the member's bounded
//! queue with `try_send`: a slow member never delays the others. A member
//! whose queue is full is kicked (its connection closes with 4008 and the
//! client resumes, getting a fresh world).
//!
//! Frames are sequenced per member: a member gets nothing until its welcome
//! (the world at tick T), then every tick frame after T, once, in order.
//! Frames of an older ownership epoch are ignored. A member that would see a
//! gap (frames lost on the bus, or a new owner taking over the room) is
//! resynchronised: its connection enters again and gets a fresh world.
//!
//! One connection per player: a newer one (a resume, a second tab) replaces
//! the member, here or, through the room's `Superseded` frame, on another
//! gateway. The replaced connection is told, and closes with 4009.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use axum::extract::ws::Utf8Bytes;
use snakepit_shared::{Bus, BusError, ConnId, FrameKind, OutFrame, PlayerId, RoomId, RoomInput, Subscription};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::debug;

use crate::metrics::GatewayMetrics;

/// What a connection's writer receives.
#[derive(Debug, Clone)]
pub enum Outgoing {
    Frame(Utf8Bytes),
    /// A room's tick frame.
    Tick(Utf8Bytes),
    /// The room's welcome: from now on the member gets every tick.
    Welcome(Utf8Bytes),
    /// The member missed frames (a gap, or a new owner of the room): it
    /// must enter again to get a fresh world.
    Resync,
}

/// A local member of a room, as the fan-out sees it.
pub struct Member {
    pub conn: ConnId,
    pub tx: mpsc::Sender<Outgoing>,
    pub kick: CancellationToken,
    /// Set, just before the kick, when a newer connection of the player
    /// took the member over.
    pub superseded: Arc<AtomicBool>,
    /// Tick of the last frame delivered; `None` until the welcome.
    after: Option<u64>,
}

impl Member {
    pub fn new(conn: ConnId, tx: mpsc::Sender<Outgoing>, kick: CancellationToken, superseded: Arc<AtomicBool>) -> Self {
        Self { conn, tx, kick, superseded, after: None }
    }

    /// Ends the connection: a newer one of the same player holds the seat.
    fn supersede(&self) {
        self.superseded.store(true, Ordering::Release);
        self.kick.cancel();
    }
}

struct Feed {
    members: Mutex<HashMap<PlayerId, Member>>,
    stop: CancellationToken,
}

impl Feed {
    fn members(&self) -> MutexGuard<'_, HashMap<PlayerId, Member>> {
        self.members.lock().unwrap_or_else(|e| e.into_inner())
    }
}

pub struct Fanout<B> {
    bus: B,
    presence_every: std::time::Duration,
    feeds: tokio::sync::Mutex<HashMap<RoomId, Arc<Feed>>>,
    metrics: GatewayMetrics,
    tracker: TaskTracker,
    shutdown: CancellationToken,
}

impl<B: Bus> Fanout<B> {
    pub fn new(
        bus: B,
        metrics: GatewayMetrics,
        tracker: TaskTracker,
        shutdown: CancellationToken,
        presence_every: std::time::Duration,
    ) -> Self {
        Self { bus, presence_every, feeds: Default::default(), metrics, tracker, shutdown }
    }

    /// Adds a member to `room`, subscribing to the room first if needed;
    /// once this returns, no frame of the room is missed.
    pub async fn attach(&self, room: &RoomId, player: PlayerId, member: Member) -> Result<(), BusError> {
        let mut feeds = self.feeds.lock().await;
        if let Some(feed) = feeds.get(room) {
            let conn = member.conn;
            if let Some(old) = feed.members().insert(player, member).filter(|old| old.conn != conn) {
                // The same player on this gateway through another connection.
                old.supersede();
            }
            return Ok(());
        }
        let sub = self.bus.subscribe_output(room).await?;
        let feed = Arc::new(Feed {
            members: Mutex::new(HashMap::from([(player, member)])),
            stop: self.shutdown.child_token(),
        });
        feeds.insert(room.clone(), feed.clone());
        self.metrics.room_feeds.inc();
        let metrics = self.metrics.clone();
        let presence = Presence { bus: self.bus.clone(), room: room.clone(), every: self.presence_every };
        self.tracker.spawn(pump(sub, feed, metrics, presence));
        Ok(())
    }

    /// Removes a member if it is still the one of connection `conn`; the
    /// last member out ends the room's subscription.
    pub async fn detach(&self, room: &RoomId, player: PlayerId, conn: ConnId) {
        let mut feeds = self.feeds.lock().await;
        let Some(feed) = feeds.get(room) else { return };
        let empty = {
            let mut members = feed.members();
            if members.get(&player).is_some_and(|m| m.conn == conn) {
                members.remove(&player);
            }
            members.is_empty()
        };
        if empty {
            feed.stop.cancel();
            feeds.remove(room);
            self.metrics.room_feeds.dec();
        }
    }
}

/// After this long with frames only from an older epoch, the older epoch is
/// taken as the current one: Redis lost its data (epoch counters included)
/// and the room's owner started over. A fenced-off worker stops within one
/// lease round, and a live owner's frames keep this from happening.
const ADOPT_OLDER_EPOCH: std::time::Duration = std::time::Duration::from_secs(3);

/// Where and how often a feed vouches for its members.
struct Presence<B> {
    bus: B,
    room: RoomId,
    every: std::time::Duration,
}

async fn pump<B: Bus>(
    mut sub: Subscription<OutFrame>,
    feed: Arc<Feed>,
    metrics: GatewayMetrics,
    presence: Presence<B>,
) {
    let mut epoch = 0;
    let mut current_seen = tokio::time::Instant::now();
    let mut vouch = tokio::time::interval(presence.every);
    vouch.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let stop = feed.stop.clone().cancelled_owned();
    tokio::pin!(stop);
    loop {
        let frame = tokio::select! {
            _ = &mut stop => break,
            _ = vouch.tick() => {
                let members: Vec<(PlayerId, ConnId)> = feed.members().iter().map(|(p, m)| (*p, m.conn)).collect();
                if let Err(e) = presence.bus.publish_input(&presence.room, RoomInput::presence(members)).await {
                    debug!(room = %presence.room, error = %e, "presence not sent");
                }
                continue;
            }
            frame = sub.recv() => frame,
        };
        let Some(frame) = frame else { break };
        if frame.epoch < epoch && current_seen.elapsed() < ADOPT_OLDER_EPOCH {
            metrics.stale_frames.inc();
            continue;
        }
        current_seen = tokio::time::Instant::now();
        if frame.epoch != epoch {
            if epoch != 0 {
                // A new owner: everyone needs its world.
                for member in feed.members().values_mut() {
                    resync(member, &metrics);
                }
            }
            epoch = frame.epoch;
        }
        let Ok(text) = Utf8Bytes::try_from(frame.payload) else {
            metrics.stale_frames.inc();
            continue;
        };
        let mut members = feed.members();
        match frame.kind {
            FrameKind::Tick => {
                for member in members.values_mut() {
                    match member.after {
                        Some(after) if frame.tick == after + 1 => {
                            deliver(member, Outgoing::Tick(text.clone()), &metrics);
                            member.after = Some(frame.tick);
                        }
                        Some(after) if frame.tick > after + 1 => resync(member, &metrics),
                        // Waiting for a welcome, or a repeated tick.
                        _ => {}
                    }
                }
            }
            FrameKind::Welcome(player) => {
                // Only a member waiting for a world gets one: a repeated
                // enter answered twice costs nothing more.
                if let Some(member) = members.get_mut(&player).filter(|m| m.after.is_none()) {
                    deliver(member, Outgoing::Welcome(text), &metrics);
                    member.after = Some(frame.tick);
                }
            }
            FrameKind::Direct(player) => {
                if let Some(member) = members.get_mut(&player) {
                    deliver(member, Outgoing::Frame(text), &metrics);
                }
            }
            FrameKind::Superseded { player, conn } => {
                if let Some(member) = members.get(&player).filter(|m| m.conn == conn) {
                    member.supersede();
                }
            }
        }
    }
    debug!("room feed ended");
}

fn resync(member: &mut Member, metrics: &GatewayMetrics) {
    if member.after.take().is_some() {
        metrics.resyncs.inc();
        deliver(member, Outgoing::Resync, metrics);
    }
}

fn deliver(member: &mut Member, out: Outgoing, metrics: &GatewayMetrics) {
    match member.tx.try_send(out) {
        Ok(()) => metrics.frames_sent.inc(),
        Err(mpsc::error::TrySendError::Full(_)) => {
            metrics.frames_dropped.inc();
            if !member.kick.is_cancelled() {
                metrics.slow_clients.inc();
                member.kick.cancel();
            }
        }
        Err(mpsc::error::TrySendError::Closed(_)) => {}
    }
}
