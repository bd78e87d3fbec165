//! What a room writes to and reads from the store besides its frames:
//! snapshots (fenced by the lease), its players' seats in the directory,
//! and the top scores. These run in the background, so that a tick never
//! waits on the store; their outcomes come back to the room's loop.

use snakepit_shared::{Backend, PlayerId, RoomId, ScoreEntry, SnapshotWrite};
use tracing::{debug, warn};

use super::{MAX_MEMBERS, Room};
use crate::snapshot::RoomSnapshot;

/// What a background effect tells the room.
pub(super) enum Internal {
    TopScores(Vec<ScoreEntry>),
    /// Another owner holds the room: stop.
    SnapshotRefused,
    /// Not written (Redis away, or nobody holds the lease until the host
    /// takes it again): the changes are still to be saved.
    SnapshotNotSaved,
}

impl<B: Backend> Room<B> {
    fn snapshot(&self) -> Option<Vec<u8>> {
        let members = self.members.iter().map(|(id, m)| m.snapshot(*id)).collect();
        let snapshot = RoomSnapshot { game: self.game.clone(), members };
        match snapshot.encode() {
            Ok(bytes) => Some(bytes),
            Err(e) => {
                warn!(room = %self.id, error = %e, "cannot encode a snapshot");
                None
            }
        }
    }

    /// Writes a snapshot in the background. Refused because another owner
    /// holds the room: the room stops. Not written for any other reason:
    /// the room goes on, and saves again next time (a lease that vanished
    /// is taken again by the host, above its old epoch).
    pub(super) fn spawn_snapshot(&mut self) {
        if !std::mem::take(&mut self.dirty) {
            return;
        }
        let Some(bytes) = self.snapshot() else { return };
        let backend = self.backend.clone();
        let lease = self.lease.borrow().clone();
        let tx = self.internal_tx.clone();
        tokio::spawn(async move {
            let outcome = match backend.save_snapshot(&lease, bytes.into()).await {
                Ok(SnapshotWrite::Saved) => return,
                Ok(SnapshotWrite::Lost) => Internal::SnapshotRefused,
                Ok(SnapshotWrite::Missing) => {
                    debug!(room = %lease.room, "snapshot not saved: nobody holds the lease");
                    Internal::SnapshotNotSaved
                }
                Err(e) => {
                    warn!(room = %lease.room, error = %e, "snapshot not saved");
                    Internal::SnapshotNotSaved
                }
            };
            let _ = tx.send(outcome).await;
        });
    }

    /// The final snapshot of a handover, written before the room stops.
    pub(super) async fn save_snapshot(&self) {
        let Some(bytes) = self.snapshot() else { return };
        let lease = self.lease.borrow().clone();
        match self.backend.save_snapshot(&lease, bytes.into()).await {
            Ok(SnapshotWrite::Saved) => {}
            Ok(outcome) => warn!(room = %self.id, ?outcome, "final snapshot not saved"),
            Err(e) => warn!(room = %self.id, error = %e, "final snapshot not saved"),
        }
    }

    /// Holds the seats of this room's players in the directory, in the
    /// background: seats of players who are gone expire.
    pub(super) fn confirm_seats(&self) {
        let players: Vec<PlayerId> = self.members.iter().filter(|(_, m)| m.player).map(|(id, _)| *id).collect();
        // Spectators' ids count too: the counter must pass every id in use.
        let highest = self.members.keys().copied().max().unwrap_or(PlayerId::NONE);
        let backend = self.backend.clone();
        let (room, hold) = (self.id.clone(), self.config.seat_hold);
        tokio::spawn(async move {
            if let Err(e) = backend.confirm_seats(&room, &players, highest, hold).await {
                warn!(%room, error = %e, "could not confirm seats");
            }
        });
    }

    /// Frees a removed player's seat in the directory, in the background.
    pub(super) fn release_seat(&self, player: PlayerId) {
        let (backend, room) = (self.backend.clone(), self.id.clone());
        tokio::spawn(async move {
            if let Err(e) = backend.release_seat(&room, player).await {
                debug!(%room, error = %e, "could not release a seat");
            }
        });
    }

    pub(super) fn refresh_top_scores(&self) {
        let backend = self.backend.clone();
        let tx = self.internal_tx.clone();
        let n = self.config.settings.top_scores;
        tokio::spawn(async move {
            match backend.top_scores(n).await {
                Ok(scores) => {
                    let _ = tx.send(Internal::TopScores(scores)).await;
                }
                Err(e) => warn!(error = %e, "could not load top scores"),
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
        submit_scores(&self.backend, &self.id, entries).await;
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

    /// Sends the game's top scores to the shared store in the background:
    /// when the game ended, all of them, then the merged list of all rooms
    /// is read back; otherwise only those that beat what the store is
    /// known to hold.
    pub(super) fn save_top_scores(&mut self, ended: bool) {
        let scores: Vec<ScoreEntry> = self
            .game
            .top_scores()
            .iter()
            .filter(|s| ended || self.stored.get(&s.name).is_none_or(|best| *best < s.score))
            .cloned()
            .collect();
        if scores.is_empty() {
            return;
        }
        self.note_stored(&scores);
        let (backend, room, tx) = (self.backend.clone(), self.id.clone(), self.internal_tx.clone());
        let n = self.config.settings.top_scores;
        tokio::spawn(async move {
            submit_scores(&backend, &room, scores).await;
            if ended && let Ok(scores) = backend.top_scores(n).await {
                let _ = tx.send(Internal::TopScores(scores)).await;
            }
        });
    }
}

async fn submit_scores<B: Backend>(backend: &B, room: &RoomId, scores: impl IntoIterator<Item = ScoreEntry>) {
    for s in scores {
        if let Err(e) = backend.submit_score(s).await {
            warn!(%room, error = %e, "could not save a top score");
        }
    }
}
