//! The host: decides which rooms this worker runs, and runs them.
//!
//! Every round it announces itself with a heartbeat and renews the leases
//! of its rooms in one call (a room whose lease is gone stops at once), then
//! scans the directory for rooms that rendezvous hashing gives it over the
//! live workers. Rooms whose lease another worker holds are skipped after
//! one batched look-up, not tried one by one each round. The others are
//! queued and claimed a bounded number at a time in the background (see
//! [`crate::claim`]), so a failover of thousands of rooms never delays the
//! renewal of the rooms it already runs; a claim race is settled by the
//! lease. A claimed room starts from its last snapshot, if any.
//!
//! A worker whose process dies is found gone at once, without waiting out
//! its leases: every worker stays subscribed to a presence channel of its
//! own, and the store drops a dead process's subscriptions with its
//! connections. Each host polls the presence of the workers it has seen
//! present, and one absent for [`ABSENT_POLLS`] polls in a row is withdrawn
//! and all its leases broken; a notice sends every worker (one started
//! after the death, too) to claim its share of the rooms at once. A paused or slow process keeps its
//! connections, so it stays present and its leases decide, as before (the
//! epoch fence stands either way). No worker is judged while its own
//! presence has not been steady for a lease period (after Redis came
//! back, say, when every worker resubscribes in its own time).
//!
//! A room task that panics is reported like one that returned (see
//! [`crate::supervise`]): its lease is released with no final snapshot, and
//! the room is taken over from its last good one.
//!
//! On shutdown it withdraws, lets every room write a final snapshot,
//! releases the leases and tells the other workers, which take over. It
//! does the same, and then reports a failure, if one of the tasks its rooms
//! need (the publisher, the snapshot writer) ends: rooms that can no longer
//! publish or save would otherwise run on, holding their leases, with no
//! player seeing them and nobody taking them over.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use futures_util::stream::FuturesUnordered;
use snakepit_bus::{Backend, Lease, LeaseState, Notice, RoomId, Subscription};
use tokio::sync::{mpsc, watch};
use tokio::task::{JoinError, JoinSet};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{error, info, warn};

use crate::claim::{Claimed, Claimer};
use crate::gateways::Gateways;
use crate::metrics::WorkerMetrics;
use crate::publisher::Publisher;
use crate::rendezvous;
use crate::room::{RoomConfig, RoomControl, RoomEnv, RoomExit, TickGrid};
use crate::snapshot_writer::SnapshotWriter;
use crate::supervise::{Helper, Panicked, supervise};

/// Claims under way at once: enough to take over a dead worker's rooms in
/// a few rounds, few enough not to flood the backend meanwhile.
const CLAIMS_IN_FLIGHT: usize = 16;
/// How often the presence of the other workers is polled (one command).
const PRESENCE_EVERY: Duration = Duration::from_millis(50);
/// Polls in a row a worker must be absent before it counts as gone.
const ABSENT_POLLS: u32 = 2;
/// How long rooms keep a gateway's verdict: a gateway's ids are random
/// per process, so it never comes back under the same one.
const GATEWAY_VERDICT: Duration = Duration::from_secs(600);

#[derive(Clone, Debug)]
pub struct HostConfig {
    pub worker_id: String,
    pub room: RoomConfig,
    /// How often the host renews, heartbeats and reads the directory.
    pub round_every: Duration,
    /// Lease and heartbeat lifetime: a dead worker's rooms move after this.
    pub lease_ttl: Duration,
}

struct Running {
    lease: watch::Sender<Lease>,
    control: RoomControl,
}

/// How a room task ended: it returned, or it panicked.
type RoomEnd = (RoomId, Result<RoomExit, Panicked>);

/// The host stopped on its own: a task its rooms need ended. Its rooms
/// were handed over; the process should exit (and be restarted).
#[derive(Debug, thiserror::Error)]
#[error("the worker's {task} stopped ({})", .panic.as_ref().map_or("it returned", |p| p.message.as_str()))]
pub struct HostFailed {
    pub task: &'static str,
    pub panic: Option<Panicked>,
}

pub struct Host<B> {
    backend: B,
    config: HostConfig,
    metrics: WorkerMetrics,
    /// What the worker's rooms share (the publisher and the grid on which
    /// they tick among it).
    env: Arc<RoomEnv<B>>,
    rooms: HashMap<RoomId, Running>,
    tracker: TaskTracker,
    /// The publisher and the snapshot writer: while the host runs, their
    /// end is a failure (see the module's docs).
    helpers: FuturesUnordered<Helper>,
    ended_tx: mpsc::UnboundedSender<RoomEnd>,
    ended_rx: mpsc::UnboundedReceiver<RoomEnd>,
    /// Rooms to claim, fullest first, from the last directory scan.
    to_claim: VecDeque<RoomId>,
    /// Claims under way, and the room of each.
    claims: JoinSet<Option<Claimed<B>>>,
    claiming: HashMap<tokio::task::Id, RoomId>,
    /// Set once the first heartbeat has gone out (readiness).
    announced: CancellationToken,
    /// Keeps this worker present (see the module's docs).
    presence: Option<Subscription<Notice>>,
    /// The live workers of the last scan.
    live: Vec<String>,
    /// Workers seen present at least once: only they are judged by their
    /// presence (one of an older build never subscribes).
    seen_present: HashSet<String>,
    /// Polls in a row each worker was absent.
    absent: HashMap<String, u32>,
    /// Since when this worker's own presence has been seen without a gap.
    steady_since: Option<Instant>,
    /// Its subscription link's losses at the last poll.
    link_losses: u64,
    /// Workers found gone, and when: the scan breaks their leases (for a
    /// lease period, after which their leases have run out anyway).
    gone: HashMap<String, Instant>,
    /// The gateways the rooms use, judged by their presence too.
    gateways: Gateways,
    /// Gateways found gone, and when (kept a while, for rooms that hear
    /// of a member on one late).
    gone_gateways: HashMap<String, Instant>,
}

impl<B: Backend> Host<B> {
    pub fn new(backend: B, config: HostConfig, metrics: WorkerMetrics) -> Self {
        let (ended_tx, ended_rx) = mpsc::unbounded_channel();
        let gateways = Gateways::default();
        let (publisher, published) = Publisher::spawn(backend.clone(), metrics.clone());
        let (snapshots, written) = SnapshotWriter::spawn(backend.clone());
        let helpers: FuturesUnordered<Helper> = [published, written].into_iter().collect();
        let env = Arc::new(RoomEnv {
            backend: backend.clone(),
            config: config.room.clone(),
            metrics: metrics.clone(),
            publisher,
            snapshots,
            gateways: gateways.clone(),
            ticks: TickGrid::new(),
        });
        Self {
            backend,
            config,
            metrics,
            env,
            rooms: HashMap::new(),
            tracker: TaskTracker::new(),
            helpers,
            ended_tx,
            ended_rx,
            to_claim: VecDeque::new(),
            claims: JoinSet::new(),
            claiming: HashMap::new(),
            announced: CancellationToken::new(),
            presence: None,
            live: Vec::new(),
            seen_present: HashSet::new(),
            absent: HashMap::new(),
            steady_since: None,
            link_losses: 0,
            gone: HashMap::new(),
            gateways,
            gone_gateways: HashMap::new(),
        }
    }

    /// Cancelled once the worker has announced itself.
    pub fn announced(&self) -> CancellationToken {
        self.announced.clone()
    }

    /// Runs until `shutdown`, then hands every room over. Hands them over
    /// too, and fails, if a task the rooms need ends first.
    pub async fn run(mut self, shutdown: CancellationToken) -> Result<(), HostFailed> {
        let mut failed = None;
        let mut notices = None;
        let mut rounds = tokio::time::interval(self.config.round_every);
        rounds.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut polls = tokio::time::interval(PRESENCE_EVERY);
        polls.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            if notices.is_none() {
                match self.backend.subscribe_notices().await {
                    Ok(s) => notices = Some(s),
                    Err(e) => warn!(error = %e, "cannot subscribe to notices"),
                }
            }
            // Present before the first heartbeat: others judge a worker by
            // its presence only once they have seen it.
            if self.presence.is_none() {
                match self.backend.be_present(&self.config.worker_id).await {
                    Ok(s) => self.presence = Some(s),
                    Err(e) => warn!(error = %e, "cannot announce presence"),
                }
            }
            self.start_claims();
            // Biased: the round (heartbeat and renewals) goes first, and no
            // arm waits on more than a few round trips.
            tokio::select! {
                biased;
                _ = shutdown.cancelled() => break,
                Some((task, end)) = self.helpers.next() => {
                    let failure = HostFailed { task, panic: end.err() };
                    error!(error = %failure, "handing every room over and stopping");
                    failed = Some(failure);
                    break;
                }
                _ = rounds.tick() => self.round().await,
                Some((room, end)) = self.ended_rx.recv() => match end {
                    Ok(exit) => self.ended(room, exit).await,
                    Err(panic) => self.panicked(room, panic).await,
                },
                Some(done) = self.claims.join_next_with_id() => self.claimed(done),
                _ = polls.tick() => self.poll_presence().await,
                notice = async { notices.as_mut()?.recv().await }, if notices.is_some() => match notice {
                    Some(Notice::RoomCreated(_)) | Some(Notice::RoomsReleased) => {
                        // The notices that queued meanwhile ask for the
                        // same scan: one read of the directory answers them
                        // all (one scan each made a burst of new rooms cost
                        // a read of the directory per room).
                        while notices.as_mut().and_then(Subscription::try_recv).is_some() {}
                        self.scan(false).await
                    }
                    None => notices = None,
                },
            }
        }
        self.hand_over().await;
        failed.map_or(Ok(()), Err)
    }

    async fn round(&mut self) {
        let id = self.config.worker_id.clone();
        let beat = self.backend.heartbeat(&id, self.config.lease_ttl).await;
        // Leases live on their rooms' shards of a Redis Cluster: renewed
        // even when the workers' list is out of reach, so that one shard
        // away does not let every room's lease lapse. Claiming waits for a
        // heartbeat that went through.
        let all_held = self.renew().await;
        if let Err(e) = beat {
            warn!(error = %e, "heartbeat failed");
            return;
        }
        self.announced.cancel();
        self.scan(all_held).await;
    }

    /// Reads the directory and queues the rooms to claim: those rendezvous
    /// gives this worker, that it neither runs nor claims already, and whose
    /// lease nobody holds (one look-up for all of them). With `restore`
    /// (every lease of ours is held), rooms of ours the directory lost are
    /// put back.
    async fn scan(&mut self, restore: bool) {
        let id = self.config.worker_id.clone();
        let (live, rooms) = match (self.backend.live_workers().await, self.backend.rooms(usize::MAX).await) {
            (Ok(live), Ok(rooms)) => (live, rooms),
            (Err(e), _) | (_, Err(e)) => {
                warn!(error = %e, "cannot read workers or rooms");
                return;
            }
        };
        // Rooms we run that the directory lost (Redis restarted empty), once
        // their leases are ours again: listed earlier, another worker could
        // claim one and start it afresh.
        let listed: HashSet<&RoomId> = rooms.iter().map(|r| &r.id).collect();
        for room in self.rooms.keys().filter(|r| restore && !listed.contains(r)) {
            if let Err(e) = self.backend.ensure_room(room, self.config.room.settings.max_players).await {
                warn!(%room, error = %e, "cannot restore the room in the directory");
            }
        }
        self.live.clone_from(&live);
        if !self.gone.is_empty() {
            let others: Vec<RoomId> =
                rooms.iter().map(|r| r.id.clone()).filter(|r| !self.rooms.contains_key(r)).collect();
            self.break_gone_leases(&others).await;
        }
        let claiming: HashSet<&RoomId> = self.claiming.values().collect();
        let candidates: Vec<RoomId> = rooms
            .into_iter()
            .map(|info| info.id)
            .filter(|r| !self.rooms.contains_key(r) && !claiming.contains(r))
            .filter(|r| rendezvous::owner(r, &live) == Some(id.as_str()))
            .collect();
        if candidates.is_empty() {
            self.to_claim.clear();
            return;
        }
        let holders = match self.backend.lease_holders(&candidates).await {
            Ok(holders) => holders,
            Err(e) => {
                warn!(error = %e, "cannot read lease holders");
                return;
            }
        };
        // A held lease is another worker's room until it expires (or a
        // claim of ours that failed half-way, until it expires).
        self.to_claim = candidates.into_iter().zip(holders).filter(|(_, h)| h.is_none()).map(|(r, _)| r).collect();
    }

    /// Breaks every lease a gone worker still holds among `rooms`, not only
    /// those of the rooms rendezvous now gives this worker: a worker that
    /// started after the death never saw the dead one and cannot judge it,
    /// yet may be the new owner of some of its rooms. The others are told
    /// (a notice), so each scans and claims its share at once.
    async fn break_gone_leases(&mut self, rooms: &[RoomId]) {
        if rooms.is_empty() {
            return;
        }
        let holders = match self.backend.lease_holders(rooms).await {
            Ok(holders) => holders,
            Err(e) => {
                warn!(error = %e, "cannot read lease holders");
                return;
            }
        };
        let mut broken = 0;
        for worker in self.gone.keys() {
            let held: Vec<RoomId> = rooms
                .iter()
                .zip(&holders)
                .filter(|(_, h)| h.as_deref() == Some(worker.as_str()))
                .map(|(r, _)| r.clone())
                .collect();
            if held.is_empty() {
                continue;
            }
            match self.backend.break_leases(worker, &held).await {
                Ok(n) => {
                    info!(%worker, rooms = n, "broke the leases of a gone worker");
                    broken += n;
                }
                Err(e) => warn!(%worker, error = %e, "cannot break a gone worker's leases"),
            }
        }
        if broken > 0
            && let Err(e) = self.backend.publish_notice(Notice::RoomsReleased).await
        {
            warn!(error = %e, "cannot tell the other workers that rooms are free");
        }
    }

    /// Polls the presence of this worker and of the others it has seen
    /// present; one absent [`ABSENT_POLLS`] times in a row, while this
    /// worker's own presence has been steady for a lease period, is gone:
    /// withdrawn, and its rooms are claimed now.
    async fn poll_presence(&mut self) {
        let id = self.config.worker_id.clone();
        let mut asked = vec![id.clone()];
        asked.extend(self.live.iter().filter(|w| **w != id).cloned());
        let workers = asked.len();
        asked.extend(self.gateways.in_use());
        let losses = self.backend.link_losses();
        let present = match self.backend.present(&asked).await {
            Ok(p) if p.len() == asked.len() => p,
            _ => {
                self.steady_since = None;
                return;
            }
        };
        // Our own link broke since the last poll (the store restarted, say):
        // everyone resubscribes in its own time, so an absence proves
        // nothing for a lease period. A query queued across the break may
        // well have answered without an error.
        let broke = losses != self.link_losses || self.backend.link_losses() != losses;
        self.link_losses = self.backend.link_losses();
        if broke {
            self.steady_since = None;
            self.absent.clear();
            return;
        }
        let now = Instant::now();
        if !present[0] {
            // Our own link is down or coming back: judge nobody.
            self.steady_since = None;
            self.absent.clear();
            return;
        }
        let steady = now.duration_since(*self.steady_since.get_or_insert(now)) >= self.config.lease_ttl;
        let mut gone = Vec::new();
        for (worker, here) in asked.iter().zip(&present).skip(1) {
            if *here {
                self.seen_present.insert(worker.clone());
                self.absent.remove(worker);
                self.gone.remove(worker);
                // A gateway back (its link alone had broken): its members
                // are no longer parked on its account.
                self.gone_gateways.remove(worker);
                continue;
            }
            if !self.seen_present.contains(worker) {
                continue;
            }
            let polls = self.absent.entry(worker.clone()).or_insert(0);
            *polls += 1;
            if *polls >= ABSENT_POLLS && steady {
                gone.push(worker.clone());
            }
        }
        self.absent.retain(|w, _| asked.contains(w));
        self.seen_present.retain(|w| asked.contains(w));
        let ttl = self.config.lease_ttl;
        self.gone.retain(|_, at| now.duration_since(*at) < ttl);
        let (gone, gateways): (Vec<String>, Vec<String>) = gone.into_iter().partition(|g| asked[..workers].contains(g));
        self.judge_gateways(gateways, now);
        if gone.is_empty() {
            return;
        }
        for worker in gone {
            warn!(%worker, "worker gone (its connections closed): taking its rooms over now");
            self.metrics.workers_gone.inc();
            if let Err(e) = self.backend.withdraw(&worker).await {
                warn!(%worker, error = %e, "cannot withdraw a gone worker");
            }
            self.absent.remove(&worker);
            self.seen_present.remove(&worker);
            self.gone.insert(worker, now);
        }
        self.scan(false).await;
    }

    /// Gateways found gone now, or a while ago (the verdict stands for
    /// [`GATEWAY_VERDICT`], long past the grace period), go to the rooms,
    /// which park the snakes of their members on them.
    fn judge_gateways(&mut self, gone: Vec<String>, now: Instant) {
        for gateway in gone {
            warn!(%gateway, "gateway gone (its connections closed): its players' snakes are parked now");
            self.metrics.gateways_gone.inc();
            self.absent.remove(&gateway);
            self.seen_present.remove(&gateway);
            self.gone_gateways.insert(gateway, now);
        }
        self.gone_gateways.retain(|_, at| now.duration_since(*at) < GATEWAY_VERDICT);
        self.gateways.set_gone(self.gone_gateways.keys().cloned().collect());
    }

    /// Starts queued claims while fewer than [`CLAIMS_IN_FLIGHT`] run.
    fn start_claims(&mut self) {
        while self.claims.len() < CLAIMS_IN_FLIGHT {
            let Some(room) = self.to_claim.pop_front() else { break };
            if self.rooms.contains_key(&room) || self.claiming.values().any(|r| *r == room) {
                continue;
            }
            let claimer = Claimer {
                env: self.env.clone(),
                worker_id: self.config.worker_id.clone(),
                lease_ttl: self.config.lease_ttl,
            };
            let task = self.claims.spawn(claimer.claim(room.clone()));
            self.claiming.insert(task.id(), room);
        }
    }

    /// A claim finished: run the room if it was taken.
    fn claimed(&mut self, done: Result<(tokio::task::Id, Option<Claimed<B>>), JoinError>) {
        let (task, claimed) = match done {
            Ok(done) => done,
            Err(e) => {
                // Its lease, if taken, expires: the room is claimed again.
                warn!(error = %e, "a claim failed");
                (e.id(), None)
            }
        };
        let Some(room) = self.claiming.remove(&task) else { return };
        let Some(Claimed { lease, room: r }) = claimed else { return };
        let control = RoomControl::default();
        self.rooms.insert(room.clone(), Running { lease, control: control.clone() });
        let ended = self.ended_tx.clone();
        // Started here, outside the tracked task: that one only waits for
        // its end, and stays small.
        let running = supervise(r.run(control));
        self.tracker.spawn(async move {
            let end = running.await;
            let _ = ended.send((room, end));
        });
    }

    /// Renews every lease; true if all of them are ours afterwards.
    async fn renew(&mut self) -> bool {
        let leases: Vec<Lease> = self.rooms.values().map(|r| r.lease.borrow().clone()).collect();
        let states = match self.backend.renew_leases(&leases, self.config.lease_ttl).await {
            Ok(states) => states,
            Err(e) => {
                // Redis is away: rooms go on, and the leases are checked
                // again next round.
                warn!(error = %e, "cannot renew leases");
                return false;
            }
        };
        let mut all_held = true;
        for (lease, state) in leases.iter().zip(states) {
            match state {
                LeaseState::Held => {}
                LeaseState::Lost => {
                    warn!(room = %lease.room, epoch = lease.epoch, "lease lost; stopping the room");
                    if let Some(r) = self.rooms.get(&lease.room) {
                        r.control.lost.cancel();
                    }
                }
                LeaseState::Missing => all_held &= self.reacquire(lease).await,
                // Its shard did not answer: the room goes on, and the lease
                // is checked again next round.
                LeaseState::Unknown => all_held = false,
            }
        }
        all_held
    }

    /// Nobody holds the lease of a room we run (it expired while Redis was
    /// away, or Redis lost its data): take it again, above the old epoch,
    /// and go on. True if it is ours again.
    async fn reacquire(&mut self, old: &Lease) -> bool {
        let acquired = self.backend.acquire_lease(&old.room, &self.config.worker_id, self.config.lease_ttl, old.epoch);
        match acquired.await {
            Ok(Some(lease)) => {
                info!(room = %lease.room, epoch = lease.epoch, "lease taken again");
                if let Some(r) = self.rooms.get(&old.room) {
                    r.lease.send_replace(lease);
                }
                true
            }
            Ok(None) => {
                warn!(room = %old.room, "lease taken by another worker; stopping the room");
                if let Some(r) = self.rooms.get(&old.room) {
                    r.control.lost.cancel();
                }
                true
            }
            Err(e) => {
                warn!(room = %old.room, error = %e, "cannot take the lease again");
                false
            }
        }
    }

    async fn ended(&mut self, room: RoomId, exit: RoomExit) {
        let Some(running) = self.rooms.remove(&room) else { return };
        let lease = running.lease.borrow().clone();
        match exit {
            RoomExit::Retired => {
                // Fenced: a stale owner deletes nothing of its successor's.
                if let Err(e) = self.backend.drop_room(&lease).await {
                    warn!(%room, error = %e, "cannot drop a retired room's state");
                }
            }
            RoomExit::LeaseLost => self.metrics.leases_lost.inc(),
            RoomExit::HandedOver | RoomExit::Closed => {
                let _ = self.backend.release_lease(&lease).await;
            }
        }
    }

    /// A room task panicked: its state cannot be trusted, so no final
    /// snapshot; the lease goes back, and the room is taken over (by another
    /// worker or this one) from its last good snapshot.
    async fn panicked(&mut self, room: RoomId, panic: Panicked) {
        let Some(running) = self.rooms.remove(&room) else { return };
        self.metrics.room_panics.inc();
        warn!(%room, panic = %panic.message, "room task panicked; releasing the room");
        let lease = running.lease.borrow().clone();
        if let Err(e) = self.backend.release_lease(&lease).await {
            warn!(%room, error = %e, "cannot release the lease; the room moves when it expires");
        }
    }

    async fn hand_over(mut self) {
        info!(rooms = self.rooms.len(), "handing rooms over");
        if let Err(e) = self.backend.withdraw(&self.config.worker_id).await {
            warn!(error = %e, "cannot withdraw");
        }
        for r in self.rooms.values() {
            r.control.shutdown.cancel();
        }
        // Claims under way: their rooms never ran, so their leases go back.
        self.to_claim.clear();
        while let Some(done) = self.claims.join_next().await {
            if let Ok(Some(Claimed { lease, .. })) = done {
                let lease = lease.borrow().clone();
                let _ = self.backend.release_lease(&lease).await;
            }
        }
        self.tracker.close();
        self.tracker.wait().await;
        while let Ok((room, end)) = self.ended_rx.try_recv() {
            match end {
                Ok(exit) => self.ended(room, exit).await,
                Err(panic) => self.panicked(room, panic).await,
            }
        }
        if let Err(e) = self.backend.publish_notice(Notice::RoomsReleased).await {
            warn!(error = %e, "cannot tell the other workers");
        }
        info!("host stopped");
    }
}
