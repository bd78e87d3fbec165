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

use std::cell::Cell;
use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};

use snakepit_bus::{Bus, BusError, ConnId, FrameKind, Handler, OutFrame, PlayerId, RoomId, RoomInput};
use tokio::sync::watch;
use tokio_tungstenite::tungstenite::Utf8Bytes;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::debug;

use crate::metrics::GatewayMetrics;
use crate::signals::Signals;
use snakepit_bus::queue as outbox;

/// A frame's text, shared by every member it goes to. Behind an `Arc`, so
/// that a queued item is 16 bytes rather than 40: a connection's queue
/// keeps two blocks of 32 items for its whole life.
pub type Text = Arc<Utf8Bytes>;

/// What a connection's writer receives.
#[derive(Debug, Clone)]
pub enum Outgoing {
    Frame(Text),
    /// A room's tick frame.
    Tick(Text),
    /// The room's welcome: from now on the member gets every tick.
    Welcome(Text),
    /// The member missed frames (a gap, or a new owner of the room): it
    /// must enter again to get a fresh world.
    Resync,
    /// The room parked the member's snake: what came before shows it
    /// where it stands (not sent to the client).
    Parked,
    /// The connection left its room (not sent): a welcome queued before
    /// this is the old room's, and answers no `enter` of the new one.
    Moved,
}

/// Queues one of a connection's own frames (an answer, an error); a full
/// queue means the client is not reading, and the kick follows from the
/// fan-out.
pub fn queue_own(tx: &outbox::Sender<Outgoing>, frame: bytes::Bytes, metrics: &GatewayMetrics) {
    if let Ok(text) = Utf8Bytes::try_from(frame)
        && tx.try_send(Outgoing::Frame(Arc::new(text))).is_err()
    {
        metrics.frames_dropped.inc();
    }
}

/// A local member of a room, as the fan-out sees it.
pub struct Member {
    pub conn: ConnId,
    pub tx: outbox::Sender<Outgoing>,
    /// Kicks it (too slow) or tells it a newer connection of its player
    /// took the member over.
    pub signals: Arc<Signals>,
    /// Tick of the last frame delivered; `None` until the welcome.
    after: Option<u64>,
}

impl Member {
    pub fn new(conn: ConnId, tx: outbox::Sender<Outgoing>, signals: Arc<Signals>) -> Self {
        Self { conn, tx, signals, after: None }
    }
}

/// Where a feed's subscription stands: members wait for it before they
/// ask the room for a world, or they could miss their welcome.
#[derive(Clone, Debug)]
enum Subscribed {
    Pending,
    Yes,
    Failed(String),
}

struct Feed {
    members: Mutex<HashMap<PlayerId, Member>>,
    subscribed: watch::Sender<Subscribed>,
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
    /// Never held across an await: a slow subscription holds up only the
    /// members of its own room.
    feeds: Mutex<HashMap<RoomId, Arc<Feed>>>,
    metrics: GatewayMetrics,
    tracker: TaskTracker,
}

impl<B: Bus> Fanout<B> {
    pub fn new(bus: B, metrics: GatewayMetrics, tracker: TaskTracker, presence_every: std::time::Duration) -> Self {
        Self { bus, presence_every, feeds: Default::default(), metrics, tracker }
    }

    fn feeds(&self) -> MutexGuard<'_, HashMap<RoomId, Arc<Feed>>> {
        self.feeds.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Adds a member to `room`, subscribing to the room first if needed;
    /// once this returns, no frame of the room is missed. The subscription
    /// is made by the room's feed task, outside any lock: members of other
    /// rooms attach and leave meanwhile.
    pub async fn attach(&self, room: &RoomId, player: PlayerId, member: Member) -> Result<(), BusError> {
        let feed = {
            let mut feeds = self.feeds();
            match feeds.get(room) {
                Some(feed) => {
                    let conn = member.conn;
                    if let Some(old) = feed.members().insert(player, member).filter(|old| old.conn != conn) {
                        // The same player on this gateway through another connection.
                        old.signals.supersede();
                    }
                    feed.clone()
                }
                None => {
                    let feed = Arc::new(Feed {
                        members: Mutex::new(HashMap::from([(player, member)])),
                        subscribed: watch::Sender::new(Subscribed::Pending),
                        // Not the gateway's shutdown: a feed serves until
                        // its last member has left, so that a drain's last
                        // connections still get their rooms' frames (and
                        // word that their snakes are parked).
                        stop: CancellationToken::new(),
                    });
                    feeds.insert(room.clone(), feed.clone());
                    self.metrics.room_feeds.inc();
                    let presence = Presence { bus: self.bus.clone(), room: room.clone(), every: self.presence_every };
                    self.tracker.spawn(feed_task(feed.clone(), self.metrics.clone(), presence));
                    feed
                }
            }
        };
        let mut subscribed = feed.subscribed.subscribe();
        let outcome = subscribed.wait_for(|s| !matches!(s, Subscribed::Pending)).await.map(|s| s.clone());
        match outcome {
            Ok(Subscribed::Yes) => Ok(()),
            Ok(Subscribed::Failed(e)) => {
                self.forget(room, &feed);
                Err(BusError::Unavailable(e))
            }
            // The feed task ended before it subscribed (a shutdown).
            _ => {
                self.forget(room, &feed);
                Err(BusError::Unavailable("room feed stopped".into()))
            }
        }
    }

    /// Removes a feed that could not subscribe (if still the room's).
    fn forget(&self, room: &RoomId, feed: &Arc<Feed>) {
        let mut feeds = self.feeds();
        if feeds.get(room).is_some_and(|f| Arc::ptr_eq(f, feed)) {
            feeds.remove(room);
            feed.stop.cancel();
            self.metrics.room_feeds.dec();
        }
    }

    /// Removes a member if it is still the one of connection `conn`; the
    /// last member out ends the room's subscription.
    pub fn detach(&self, room: &RoomId, player: PlayerId, conn: ConnId) {
        let mut feeds = self.feeds();
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

/// A room's feed: subscribes, tells the members waiting in `attach`, then
/// vouches for its members until its last member leaves. The frames go to
/// the members from the bus's own delivery ([`on_frame`]), not through this
/// task: a frame costs no task wake-up of its room's.
async fn feed_task<B: Bus>(feed: Arc<Feed>, metrics: GatewayMetrics, presence: Presence<B>) {
    let (handler, ended) = Handler::new(
        {
            let (feed, metrics, epoch) = (feed.clone(), metrics.clone(), Cell::new(0));
            move |frame| on_frame(&feed, &epoch, frame, &metrics)
        },
        feed.stop.clone(),
    );
    let subscribed = tokio::select! {
        _ = feed.stop.cancelled() => {
            // Its members left (or the gateway stops) before it subscribed.
            feed.subscribed.send_replace(Subscribed::Failed("room feed stopped".into()));
            return;
        }
        sub = presence.bus.subscribe_output_with(&presence.room, handler) => sub,
    };
    match subscribed {
        Ok(()) => {
            feed.subscribed.send_replace(Subscribed::Yes);
            vouch(&feed, ended, metrics, presence).await;
        }
        Err(e) => {
            debug!(room = %presence.room, error = %e, "room feed could not subscribe");
            feed.subscribed.send_replace(Subscribed::Failed(e.to_string()));
        }
    }
}

/// Where and how often a feed vouches for its members.
struct Presence<B> {
    bus: B,
    room: RoomId,
    every: std::time::Duration,
}

/// Tells the room, every `presence.every`, which members are here, until
/// the feed stops or the bus ends its subscription (`ended`).
async fn vouch<B: Bus>(feed: &Feed, ended: CancellationToken, metrics: GatewayMetrics, presence: Presence<B>) {
    let mut vouch = tokio::time::interval(presence.every);
    vouch.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let stop = feed.stop.clone().cancelled_owned();
    tokio::pin!(stop);
    let ended = ended.cancelled_owned();
    tokio::pin!(ended);
    // The vouch in flight, polled beside the stop: a slow Redis delays the
    // next vouch, never the feed's end.
    let mut vouching: Option<Pin<Box<dyn Future<Output = ()> + Send>>> = None;
    loop {
        tokio::select! {
            _ = &mut stop => break,
            _ = &mut ended => break,
            () = async {
                match &mut vouching {
                    Some(sent) => sent.await,
                    None => std::future::pending().await,
                }
            }, if vouching.is_some() => {
                vouching = None;
            }
            _ = vouch.tick(), if vouching.is_none() => {
                let members: Vec<(PlayerId, ConnId)> = feed.members().iter().map(|(p, m)| (*p, m.conn)).collect();
                let (bus, room, metrics) = (presence.bus.clone(), presence.room.clone(), metrics.clone());
                vouching = Some(Box::pin(async move {
                    if let Err(e) = bus.publish_input(&room, RoomInput::presence(members)).await {
                        metrics.publish_errors.inc();
                        debug!(%room, error = %e, "presence not sent");
                    }
                }));
            }
        }
    }
    debug!("room feed ended");
}

/// One frame of the room, handed to its members (see the module docs);
/// `epoch` is the newest ownership epoch seen. Called by the bus, one frame
/// at a time per room, and never waits.
fn on_frame(feed: &Feed, epoch: &Cell<u64>, frame: OutFrame, metrics: &GatewayMetrics) {
    if frame.epoch < epoch.get() {
        metrics.stale_frames.inc();
        return;
    }
    if frame.epoch != epoch.get() {
        if epoch.get() != 0 {
            // A new owner: everyone needs its world.
            for member in feed.members().values_mut() {
                resync(member, metrics);
            }
        }
        epoch.set(frame.epoch);
    }
    let Ok(text) = Utf8Bytes::try_from(frame.payload).map(Arc::new) else {
        metrics.stale_frames.inc();
        return;
    };
    let mut members = feed.members();
    match frame.kind {
        FrameKind::Tick => {
            for member in members.values_mut() {
                match member.after {
                    Some(after) if after.checked_add(1) == Some(frame.tick) => {
                        deliver(member, Outgoing::Tick(text.clone()), metrics);
                        member.after = Some(frame.tick);
                    }
                    // A repeated tick (an owner announcing its epoch).
                    Some(after) if frame.tick == after => {}
                    // A gap, or a room that went back in time.
                    Some(_) => resync(member, metrics),
                    // Waiting for a welcome.
                    None => {}
                }
            }
        }
        FrameKind::Welcome(player) => {
            // Only a member waiting for a world gets one: a repeated
            // enter answered twice costs nothing more.
            if let Some(member) = members.get_mut(&player).filter(|m| m.after.is_none()) {
                deliver(member, Outgoing::Welcome(text), metrics);
                member.after = Some(frame.tick);
            }
        }
        FrameKind::Direct(player) => {
            if let Some(member) = members.get_mut(&player) {
                deliver(member, Outgoing::Frame(text), metrics);
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
                member.signals.supersede();
            }
        }
    }
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
        Err(outbox::SendError::Full) => {
            metrics.frames_dropped.inc();
            if !member.signals.is_kicked() {
                metrics.slow_clients.inc();
                member.signals.kick();
            }
        }
        Err(outbox::SendError::Closed) => {}
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
        rx: outbox::Receiver<Outgoing>,
    }

    async fn fixture() -> Fixture {
        let bus = MemoryBackend::new();
        let metrics = GatewayMetrics::register(&prometheus::Registry::new()).unwrap();
        let fanout = Fanout::new(bus.clone(), metrics.clone(), TaskTracker::new(), Duration::from_secs(3600));
        let (room, player) = (RoomId::parse("fan").unwrap(), PlayerId::random());
        let (tx, rx) = outbox::channel(64);
        let conn = ConnId::random();
        let member = Member::new(conn, tx, Default::default());
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
            while let Some(o) = self.rx.try_recv() {
                out.push(match o {
                    Outgoing::Tick(t) => format!("tick {}", t.as_str()),
                    Outgoing::Welcome(t) => format!("welcome {}", t.as_str()),
                    Outgoing::Frame(t) => format!("frame {}", t.as_str()),
                    Outgoing::Resync => "resync".into(),
                    Outgoing::Parked => "parked".into(),
                    Outgoing::Moved => "moved".into(),
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

    /// A frame is in its members' queues when its publish returns: the bus
    /// hands it over itself, with no task of the room's to wake (one per
    /// frame, in a room of one member). When the last member leaves, the
    /// subscription ends.
    #[tokio::test]
    async fn frames_reach_members_without_a_task_of_the_room() {
        let mut f = fixture().await;
        let frame = |tick, kind| OutFrame { epoch: 1, tick, kind, payload: Bytes::from(format!("[{tick}]")) };
        f.bus.publish_output(&f.room, frame(5, FrameKind::Welcome(f.player))).await.unwrap();
        for tick in 6..=8 {
            f.bus.publish_output(&f.room, frame(tick, FrameKind::Tick)).await.unwrap();
        }
        // No await in between that could have let another task run.
        assert_eq!(f.received(), ["welcome [5]", "tick [6]", "tick [7]", "tick [8]"]);

        f.fanout.detach(&f.room, f.player, f.conn);
        assert_eq!(f.bus.publish_output(&f.room, frame(9, FrameKind::Tick)).await.unwrap(), 0);
        assert!(f.received().is_empty());
        assert_eq!(f.metrics.room_feeds.get(), 0);
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
