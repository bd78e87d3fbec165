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
//! Frames of an older ownership epoch are ignored, always: epochs are
//! unique and grow even across a Redis that lost its data, so an older one
//! is a fenced-off owner. A member that would see anything but the next
//! tick (frames lost on the bus, a room that started over, a new owner
//! taking over the room) is resynchronised: its connection enters again and
//! gets a fresh world.
//!
//! One connection per player: a newer one (a resume, a second tab) replaces
//! the member, here or, through the room's `Superseded` frame, on another
//! gateway. The replaced connection is told, and closes with 4009.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use axum::extract::ws::Utf8Bytes;
use snakepit_bus::{Bus, BusError, ConnId, FrameKind, OutFrame, PlayerId, RoomId, RoomInput, Subscription};
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
    /// The room parked the member's snake: what came before shows it
    /// where it stands (not sent to the client).
    Parked,
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
                    metrics.publish_errors.inc();
                    debug!(room = %presence.room, error = %e, "presence not sent");
                }
                continue;
            }
            frame = sub.recv() => frame,
        };
        let Some(frame) = frame else { break };
        if frame.epoch < epoch {
            metrics.stale_frames.inc();
            continue;
        }
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
                        // A repeated tick (an owner announcing its epoch).
                        Some(after) if frame.tick == after => {}
                        // A gap, or a room that went back in time.
                        Some(_) => resync(member, &metrics),
                        // Waiting for a welcome.
                        None => {}
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
            FrameKind::Parked { player, conn } => {
                if let Some(member) = members.get_mut(&player).filter(|m| m.conn == conn) {
                    // A marker, not a frame: a full queue is a kick anyway.
                    let _ = member.tx.try_send(Outgoing::Parked);
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

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use std::time::Duration;

    use bytes::Bytes;
    use snakepit_bus::MemoryBackend;

    use super::*;

    struct Fixture {
        bus: MemoryBackend,
        fanout: Fanout<MemoryBackend>,
        metrics: GatewayMetrics,
        room: RoomId,
        player: PlayerId,
        conn: ConnId,
        rx: mpsc::Receiver<Outgoing>,
    }

    async fn fixture() -> Fixture {
        let bus = MemoryBackend::new();
        let metrics = GatewayMetrics::register(&prometheus::Registry::new()).unwrap();
        let fanout = Fanout::new(
            bus.clone(),
            metrics.clone(),
            TaskTracker::new(),
            CancellationToken::new(),
            Duration::from_secs(3600),
        );
        let (room, player) = (RoomId::parse("fan").unwrap(), PlayerId::random());
        let (tx, rx) = mpsc::channel(64);
        let conn = ConnId::random();
        let member = Member::new(conn, tx, CancellationToken::new(), Default::default());
        fanout.attach(&room, player, member).await.unwrap();
        Fixture { bus, fanout, metrics, room, player, conn, rx }
    }

    impl Fixture {
        async fn publish(&self, epoch: u64, tick: u64, kind: FrameKind) {
            let payload = Bytes::from(format!("[[\"tick\",{tick}]]"));
            self.bus.publish_output(&self.room, OutFrame { epoch, tick, kind, payload }).await.unwrap();
            // Let the pump run.
            tokio::time::sleep(Duration::from_millis(10)).await;
        }

        fn received(&mut self) -> Vec<String> {
            let mut out = Vec::new();
            while let Ok(o) = self.rx.try_recv() {
                out.push(match o {
                    Outgoing::Tick(t) => format!("tick {t}"),
                    Outgoing::Welcome(t) => format!("welcome {t}"),
                    Outgoing::Frame(t) => format!("frame {t}"),
                    Outgoing::Resync => "resync".into(),
                    Outgoing::Parked => "parked".into(),
                });
            }
            out
        }
    }

    /// An older epoch is a fenced-off owner however long the room has been
    /// quiet (a game over is quiet): its frames never reach a member.
    #[tokio::test(start_paused = true)]
    async fn an_older_epoch_is_never_adopted_after_quiet() {
        let mut f = fixture().await;
        f.publish(10, 5, FrameKind::Welcome(f.player)).await;
        f.publish(10, 6, FrameKind::Tick).await;
        assert_eq!(f.received(), ["welcome [[\"tick\",5]]", "tick [[\"tick\",6]]"]);
        tokio::time::sleep(Duration::from_secs(60)).await;
        f.publish(9, 100, FrameKind::Tick).await;
        f.publish(9, 101, FrameKind::Welcome(f.player)).await;
        f.publish(9, 102, FrameKind::Tick).await;
        assert!(f.received().is_empty(), "a stale owner's frames got through");
        assert_eq!(f.metrics.stale_frames.get(), 3);
        // The current owner goes on.
        f.publish(10, 7, FrameKind::Tick).await;
        assert_eq!(f.received(), ["tick [[\"tick\",7]]"]);
        drop(f.fanout);
    }

    /// Within one epoch, a tick that does not follow (a gap, or a room that
    /// started over at a lower tick) resynchronises the member; a repeated
    /// tick (an epoch announcement) is skipped.
    #[tokio::test(start_paused = true)]
    async fn any_tick_that_does_not_follow_resyncs() {
        let mut f = fixture().await;
        f.publish(3, 40, FrameKind::Welcome(f.player)).await;
        f.publish(3, 40, FrameKind::Tick).await;
        f.publish(3, 41, FrameKind::Tick).await;
        f.publish(3, 2, FrameKind::Tick).await;
        assert_eq!(f.received(), ["welcome [[\"tick\",40]]", "tick [[\"tick\",41]]", "resync"]);
        f.publish(3, 2, FrameKind::Welcome(f.player)).await;
        f.publish(3, 9, FrameKind::Tick).await;
        assert_eq!(f.received(), ["welcome [[\"tick\",2]]", "resync"]);
        assert_eq!(f.metrics.resyncs.get(), 2);
    }

    /// The room's word that it parked a snake reaches only that player's
    /// connection, in order after the frames before it, and is no frame.
    #[tokio::test]
    async fn a_parked_marker_reaches_only_its_connection() {
        let mut f = fixture().await;
        let (player, conn) = (f.player, f.conn);
        f.publish(1, 5, FrameKind::Welcome(player)).await;
        f.publish(1, 6, FrameKind::Tick).await;
        f.publish(1, 6, FrameKind::Parked { player, conn: ConnId::random() }).await;
        f.publish(1, 6, FrameKind::Parked { player: PlayerId::random(), conn }).await;
        f.publish(1, 6, FrameKind::Parked { player, conn }).await;
        f.publish(1, 7, FrameKind::Tick).await;
        let got = f.received();
        assert_eq!(got.len(), 4, "{got:?}");
        assert!(got[0].starts_with("welcome") && got[1].starts_with("tick"), "{got:?}");
        assert_eq!(got[2], "parked");
        assert!(got[3].starts_with("tick"), "{got:?}");
        assert_eq!(f.metrics.frames_sent.get(), 3, "a marker is not a frame sent");
    }
}
