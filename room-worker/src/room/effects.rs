//! What a room writes to and reads from the store besides its frames:
//! snapshots (fenced by the lease), its players' seats in the directory,
//! and the top scores. These run in the background, so that a tick never
//! waits on the store: snapshots with the worker's writer (one write for
//! the rooms of a tick, see [`crate::snapshot_writer`]), the rest in a
//! [`JoinSet`] the room owns rather than as loose tasks: the room reaps
//! their outcomes in its loop, and when it stops it decides what becomes
//! of those still under way. A late background snapshot must never land
//! after the final one of a hand-over, and a top score sent just before
//! the room ends must not be lost with it.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use snakepit_bus::{Backend, PlayerId, RoomId, ScoreEntry, SnapshotSave, SnapshotWrite};
use tokio::sync::oneshot;
use tokio::task::{AbortHandle, Id, JoinError, JoinSet};
use tokio::time::{Instant, timeout};
use tracing::{debug, warn};

use super::{MAX_MEMBERS, Room, RoomExit};
use crate::snapshot::RoomSnapshotRef;
use crate::snapshot_writer::Written;

/// Longest the final snapshot of a hand-over waits for background ones
/// still under way: longer than the Redis client's response timeout (2 s),
/// so that each of them has been answered or given up by then.
const SNAPSHOTS_WAIT: Duration = Duration::from_secs(3);
/// Longest a stopping room waits for its writes still under way.
const WRITES_WAIT: Duration = Duration::from_secs(2);

/// What a background effect tells the room.
pub(super) enum Outcome {
    /// Nothing to do.
    Done,
    /// A snapshot landed: the next may go (at once, if it is urgent).
    SnapshotSaved,
    TopScores(Vec<ScoreEntry>),
    /// Top scores the store did not take: not known to be stored, so the
    /// next save sends them again.
    ScoresNotSaved(Vec<ScoreEntry>),
    /// Another owner holds the room: stop.
    /// Written under the lease of this epoch.
    SnapshotRefused(u64),
    /// Not written (Redis away, or nobody holds the lease until the host
    /// takes it again): the changes are still to be saved.
    SnapshotNotSaved,
}

/// What an effect is, which decides its fate when the room stops.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    /// A snapshot, fenced by the lease.
    Snapshot,
    /// Top scores sent to the store: not fenced by the lease, and nobody
    /// sends them again, so they are waited for whatever the exit.
    Scores,
    /// Seats held or released in the directory.
    Seats,
    /// A read of the top scores: of no use once the room stops.
    Read,
}

const ALL: [Kind; 4] = [Kind::Snapshot, Kind::Scores, Kind::Seats, Kind::Read];

/// The room's background effects under way.
pub(super) struct Effects {
    room: RoomId,
    tasks: JoinSet<Outcome>,
    pending: HashMap<Id, (Kind, AbortHandle)>,
    /// The snapshot with the worker's writer (no task of the room's own),
    /// and the epoch it was written under.
    snapshot: Option<(oneshot::Receiver<Written>, u64)>,
}

impl Effects {
    pub(super) fn new(room: RoomId) -> Self {
        Self { room, tasks: JoinSet::new(), pending: HashMap::new(), snapshot: None }
    }

    /// A snapshot handed to the worker's writer under `epoch`.
    fn snapshot_sent(&mut self, written: oneshot::Receiver<Written>, epoch: u64) {
        self.snapshot = Some((written, epoch));
    }

    /// What a snapshot's fate tells the room (a writer gone without a word:
    /// not written).
    fn snapshot_outcome(&self, written: Option<Written>, epoch: u64) -> Outcome {
        match written.flatten() {
            Some(SnapshotWrite::Saved) => Outcome::SnapshotSaved,
            // A later snapshot of this lease is stored, though the room
            // has one under way at a time and gives up any it stops
            // waiting for: its count is behind the store's. Loud, and the
            // changes are still to be saved.
            Some(SnapshotWrite::Outdated) => {
                warn!(room = %self.room, epoch, "snapshot refused as outdated: a later one of this lease is stored");
                Outcome::SnapshotNotSaved
            }
            Some(SnapshotWrite::Lost) => Outcome::SnapshotRefused(epoch),
            Some(SnapshotWrite::Missing) => {
                debug!(room = %self.room, "snapshot not saved: nobody holds the lease");
                Outcome::SnapshotNotSaved
            }
            None => Outcome::SnapshotNotSaved,
        }
    }

    fn spawn(&mut self, kind: Kind, effect: impl Future<Output = Outcome> + Send + 'static) {
        let handle = self.tasks.spawn(effect);
        self.pending.insert(handle.id(), (kind, handle));
    }

    pub(super) fn is_empty(&self) -> bool {
        self.tasks.is_empty() && self.snapshot.is_none()
    }

    /// The outcome of the next effect to finish; `None` if none is under
    /// way. A panicked effect is logged, and its room goes on.
    pub(super) async fn next(&mut self) -> Option<Outcome> {
        std::future::poll_fn(|cx| self.poll_next(cx)).await
    }

    fn poll_next(&mut self, cx: &mut Context<'_>) -> Poll<Option<Outcome>> {
        if let Some((written, epoch)) = self.snapshot.as_mut()
            && let Poll::Ready(written) = Pin::new(written).poll(cx)
        {
            let epoch = *epoch;
            self.snapshot = None;
            return Poll::Ready(Some(self.snapshot_outcome(written.ok(), epoch)));
        }
        match self.tasks.poll_join_next_with_id(cx) {
            Poll::Ready(Some(done)) => Poll::Ready(Some(self.reaped(done))),
            Poll::Ready(None) if self.snapshot.is_none() => Poll::Ready(None),
            Poll::Ready(None) | Poll::Pending => Poll::Pending,
        }
    }

    /// The outcome of an effect that has finished, without waiting.
    pub(super) fn try_next(&mut self) -> Option<Outcome> {
        if let Some((written, epoch)) = self.snapshot.as_mut() {
            let epoch = *epoch;
            match written.try_recv() {
                Err(oneshot::error::TryRecvError::Empty) => {}
                Ok(written) => {
                    self.snapshot = None;
                    return Some(self.snapshot_outcome(Some(written), epoch));
                }
                Err(oneshot::error::TryRecvError::Closed) => {
                    self.snapshot = None;
                    return Some(self.snapshot_outcome(None, epoch));
                }
            }
        }
        let done = self.tasks.try_join_next_with_id()?;
        Some(self.reaped(done))
    }

    fn reaped(&mut self, done: Result<(Id, Outcome), JoinError>) -> Outcome {
        match done {
            Ok((id, outcome)) => {
                self.pending.remove(&id);
                outcome
            }
            Err(e) => {
                self.pending.remove(&e.id());
                if e.is_panic() {
                    warn!(room = %self.room, error = %e, "a background effect panicked");
                }
                Outcome::Done
            }
        }
    }

    fn any(&self, kinds: &[Kind]) -> bool {
        (self.snapshot.is_some() && kinds.contains(&Kind::Snapshot))
            || self.pending.values().any(|(kind, _)| kinds.contains(kind))
    }

    /// Aborts the effects of `kinds`. A snapshot is given up: left out if
    /// the writer has not sent it yet (one sent is fenced in the store by
    /// the lease and by its place among the lease's snapshots).
    fn abort(&mut self, kinds: &[Kind]) {
        if kinds.contains(&Kind::Snapshot) {
            self.snapshot = None;
        }
        for (_, handle) in self.pending.values().filter(|(kind, _)| kinds.contains(kind)) {
            handle.abort();
        }
    }

    /// Waits until no effect of `kinds` is under way, at most `limit`; past
    /// it those left are aborted, and waited for until they are gone (an
    /// aborted task may be in the middle of a poll on another thread). The
    /// outcomes of all effects that finished meanwhile are returned.
    async fn settle(&mut self, kinds: &[Kind], limit: Duration) -> Vec<Outcome> {
        let mut outcomes = Vec::new();
        let waited = timeout(limit, self.collect_while(kinds, &mut outcomes)).await;
        if waited.is_err() {
            warn!(room = %self.room, ?kinds, "background effects still under way aborted");
            self.abort(kinds);
            self.collect_while(kinds, &mut outcomes).await;
        }
        outcomes
    }

    async fn collect_while(&mut self, kinds: &[Kind], outcomes: &mut Vec<Outcome>) {
        while self.any(kinds) {
            match self.next().await {
                Some(outcome) => outcomes.push(outcome),
                None => break,
            }
        }
    }
}

impl<B: Backend> Room<B> {
    /// Applies what a background effect found; `Some` if the room must
    /// stop.
    pub(super) fn apply(&mut self, outcome: Outcome) -> Option<RoomExit> {
        match outcome {
            Outcome::Done => {}
            Outcome::SnapshotSaved if self.urgent => self.spawn_snapshot(),
            Outcome::SnapshotSaved => {}
            Outcome::TopScores(read) => self.take_top_scores(read),
            Outcome::ScoresNotSaved(scores) => {
                for s in scores {
                    if self.stored.get(&s.name) == Some(&s.score) {
                        self.stored.remove(&s.name);
                    }
                }
            }
            // Refused under an older lease of ours: the host took the lease
            // again (Redis lost it) while the write was under way, and the
            // new one is ours. The changes go out with the next snapshot.
            Outcome::SnapshotRefused(epoch) if epoch < self.lease.borrow().epoch => self.dirty = true,
            Outcome::SnapshotRefused(_) => return Some(RoomExit::LeaseLost),
            Outcome::SnapshotNotSaved => self.dirty = true,
        }
        None
    }

    fn snapshot(&self) -> Option<Vec<u8>> {
        let members: Vec<_> = self.members.iter().map(|(id, m)| m.snapshot(*id)).collect();
        match (RoomSnapshotRef { game: &self.game, members: &members }).encode(self.env.config.packed_snapshots) {
            Ok(bytes) => Some(bytes),
            Err(e) => {
                warn!(room = %self.id, error = %e, "cannot encode a snapshot");
                None
            }
        }
    }

    /// The room's state, to write under its lease as its next snapshot.
    fn snapshot_save(&mut self) -> Option<SnapshotSave> {
        let data = self.snapshot()?.into();
        self.snapshot_seq += 1;
        Some(SnapshotSave { lease: self.lease.borrow().clone(), seq: self.snapshot_seq, data })
    }

    /// Writes a snapshot in the background. Refused because another owner
    /// holds the room: the room stops. Not written for any other reason:
    /// the room goes on, and saves again next time (a lease that vanished
    /// is taken again by the host, above its old epoch).
    pub(super) fn spawn_snapshot(&mut self) {
        // One at a time: two under way over a slow store could land out of
        // order. The changes wait (still dirty) for the next interval, or,
        // urgent, for this one to land.
        if !self.dirty || self.effects.any(&[Kind::Snapshot]) {
            return;
        }
        self.dirty = false;
        self.urgent = false;
        self.chores.snapshot_started(Instant::now());
        let Some(save) = self.snapshot_save() else { return };
        let epoch = save.lease.epoch;
        let written = self.env.snapshots.save(save);
        self.effects.snapshot_sent(written, epoch);
    }

    /// The final snapshot of a hand-over, written before the room stops.
    ///
    /// Background snapshots still under way are waited for first, so that
    /// none of them, older, lands after it. Waited for rather than aborted:
    /// dropping the future of a request already sent does not recall the
    /// request, while its answer (or the client giving up on it) means it is
    /// done. Past [`SNAPSHOTS_WAIT`] they are aborted. Should one of them
    /// find the room another's, nothing more is written.
    pub(super) async fn save_final_snapshot(&mut self) -> RoomExit {
        // The final snapshot carries everything: no background one may
        // start while it waits.
        self.urgent = false;
        for outcome in self.effects.settle(&[Kind::Snapshot], SNAPSHOTS_WAIT).await {
            if let Some(exit) = self.apply(outcome) {
                return exit;
            }
        }
        let Some(save) = self.snapshot_save() else { return RoomExit::HandedOver };
        match self.env.backend.save_snapshot(save).await {
            Ok(SnapshotWrite::Saved) => {}
            Ok(outcome) => warn!(room = %self.id, ?outcome, "final snapshot not saved"),
            Err(e) => warn!(room = %self.id, error = %e, "final snapshot not saved"),
        }
        RoomExit::HandedOver
    }

    /// Settles the effects still under way as the room stops, at most
    /// [`WRITES_WAIT`]. Top scores sent are waited for whatever the exit:
    /// the lease does not fence them and nobody sends them again. After a
    /// lost lease nothing else may be written (a snapshot, a seat held or
    /// released: the new owner's to decide), so the rest is aborted;
    /// otherwise the writes are waited for. Reads are of no use any more.
    pub(super) async fn finish_effects(&mut self, exit: RoomExit) {
        match exit {
            RoomExit::LeaseLost => self.effects.abort(&[Kind::Snapshot, Kind::Seats, Kind::Read]),
            _ => self.effects.abort(&[Kind::Read]),
        }
        self.effects.settle(&ALL, WRITES_WAIT).await;
    }

    /// Holds the seats of this room's players in the directory, in the
    /// background: seats of players who are gone expire.
    pub(super) fn confirm_seats(&mut self) {
        let players: Vec<PlayerId> = self.members.iter().filter(|(_, m)| m.player).map(|(id, _)| *id).collect();
        // Spectators' ids count too: the counter must pass every id in use.
        let highest = self.members.keys().copied().max().unwrap_or(PlayerId::NONE);
        let (env, room) = (self.env.clone(), self.id.clone());
        self.effects.spawn(Kind::Seats, async move {
            let hold = env.config.seat_hold;
            if let Err(e) = env.backend.confirm_seats(&room, &players, highest, hold).await {
                warn!(%room, error = %e, "could not confirm seats");
            }
            Outcome::Done
        });
    }

    /// Frees a removed player's seat in the directory, in the background.
    pub(super) fn release_seat(&mut self, player: PlayerId) {
        let (env, room) = (self.env.clone(), self.id.clone());
        self.effects.spawn(Kind::Seats, async move {
            if let Err(e) = env.backend.release_seat(&room, player).await {
                debug!(%room, error = %e, "could not release a seat");
            }
            Outcome::Done
        });
    }

    pub(super) fn refresh_top_scores(&mut self) {
        let env = self.env.clone();
        self.effects.spawn(Kind::Read, async move {
            match env.backend.top_scores(env.config.settings.top_scores).await {
                Ok(scores) => Outcome::TopScores(scores),
                Err(e) => {
                    warn!(error = %e, "could not load top scores");
                    Outcome::Done
                }
            }
        });
    }

    /// The game ends with the room (no successor): its top scores and the
    /// scores of the people still alive go to the store, awaited, so that
    /// they are in it when the room is gone.
    pub(super) async fn submit_final_scores(&self) {
        let alive = self.game.players().iter().filter(|p| p.alive && !p.id.is_robot() && p.score > 0);
        let entries: Vec<ScoreEntry> = self
            .game
            .top_scores()
            .iter()
            .cloned()
            .chain(alive.map(|p| ScoreEntry { name: p.name.clone(), score: p.score, colour: p.colour }))
            .collect();
        submit_scores(&self.env.backend, &self.id, entries).await;
    }

    /// The host took the lease again because it had vanished: Redis most
    /// likely lost its data (restarted empty), this room's snapshot and the
    /// top scores with it, and what `stored` says the store holds is no
    /// longer true. The room writes them again from what it holds: a
    /// snapshot at the next interval (a quiet room would write none), and
    /// its whole top-scores list now, in the background. Were nothing lost
    /// (the lease only expired while Redis was away), this costs one
    /// snapshot and a few scores the store keeps as they are.
    pub(super) fn rewrite_lost_state(&mut self) {
        self.dirty = true;
        self.stored.clear();
        self.save_top_scores(false);
    }

    /// The store's top scores, read back: the room's list becomes both
    /// merged (best per name). An entry of the room's that the store
    /// should hold (it would rank) but does not was lost there (Redis
    /// restarted without it, or a write failed unseen): it is no longer
    /// taken as stored, and is sent again now.
    fn take_top_scores(&mut self, read: Vec<ScoreEntry>) {
        let n = self.env.config.settings.top_scores;
        let lowest = if read.len() < n { 0 } else { read.last().map_or(0, |s| s.score) };
        let held = |e: &ScoreEntry| read.iter().any(|s| s.name == e.name && s.score >= e.score);
        let lost: Vec<ScoreEntry> =
            self.game.top_scores().iter().filter(|e| e.score > lowest && !held(e)).cloned().collect();
        for e in &lost {
            self.stored.remove(&e.name);
        }
        self.note_stored(&read);
        let mut merged = read;
        for e in &lost {
            match merged.iter_mut().find(|s| s.name == e.name) {
                Some(s) => *s = e.clone(),
                None => merged.push(e.clone()),
            }
        }
        merged.sort_by(|a, b| b.score.cmp(&a.score).then_with(|| a.name.cmp(&b.name)));
        merged.truncate(n);
        self.game.set_top_scores(merged);
        if !lost.is_empty() {
            self.save_top_scores(false);
        }
    }

    pub(super) fn note_stored(&mut self, scores: &[ScoreEntry]) {
        if self.stored.len() > 4 * MAX_MEMBERS {
            self.stored.clear();
        }
        for s in scores {
            let best = self.stored.entry(s.name.clone()).or_default();
            *best = (*best).max(s.score);
        }
    }

    /// Sends the game's top scores that beat what the store is known to
    /// hold to the shared store, in the background; when the game ended,
    /// the merged list of all rooms is read back. Those the store did not
    /// take are sent again at the next save. (Each game's end sent its
    /// whole list again: with rooms of one player, whose every death ends a
    /// game, that was a tenth of the worker's time.)
    pub(super) fn save_top_scores(&mut self, ended: bool) {
        let scores: Vec<ScoreEntry> = self
            .game
            .top_scores()
            .iter()
            .filter(|s| self.stored.get(&s.name).is_none_or(|best| *best < s.score))
            .cloned()
            .collect();
        if scores.is_empty() && !ended {
            return;
        }
        self.note_stored(&scores);
        let (env, room) = (self.env.clone(), self.id.clone());
        self.effects.spawn(Kind::Scores, async move {
            let unsaved = submit_scores(&env.backend, &room, scores).await;
            if !unsaved.is_empty() {
                return Outcome::ScoresNotSaved(unsaved);
            }
            if ended && let Ok(scores) = env.backend.top_scores(env.config.settings.top_scores).await {
                return Outcome::TopScores(scores);
            }
            Outcome::Done
        });
    }
}

/// Sends `scores` one by one; returns those the store did not take.
async fn submit_scores<B: Backend>(
    backend: &B,
    room: &RoomId,
    scores: impl IntoIterator<Item = ScoreEntry>,
) -> Vec<ScoreEntry> {
    let mut unsaved = Vec::new();
    for s in scores {
        if let Err(e) = backend.submit_score(s.clone()).await {
            warn!(%room, error = %e, "could not save a top score");
            unsaved.push(s);
        }
    }
    unsaved
}
