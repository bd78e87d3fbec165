//! Who is in a room and whether they are there: members enter (a newer
//! connection of the same player supersedes the older one), go away (their
//! connection ended, or their gateway went quiet past the presence
//! timeout), and are removed once the grace period runs out. A room taken
//! over from a snapshot holds its world still until its players' gateways
//! have entered again. These rules decide when a snake parks, moves on or
//! goes, so they live together, apart from the loop that applies them.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use bytes::Bytes;
use snakepit_bus::{Backend, ConnId, FrameKind, PlayerId};
use tokio::time::Instant;
use tracing::{debug, info, warn};

use super::{MAX_MEMBERS, Room};
use crate::snapshot::MemberSnapshot;
use snakepit_game::frame::encode_welcome;

/// Superseded connections a room remembers; past this it forgets them all
/// (they are closed within moments of being superseded anyway).
const MAX_SUPERSEDED: usize = 4 * MAX_MEMBERS;
/// Longest a taken-over room waits for its players to be resynchronised.
pub(super) const HOLD_AFTER_TAKEOVER: Duration = Duration::from_secs(1);
/// A player back from away (a resume) finds its snake where it left it,
/// and it stays there until the player steers or this long has passed: its
/// client has no world yet when the room learns it is back (a gateway
/// under a reconnect storm may take a while to send one), and a snake
/// moving on meanwhile would move unseen.
pub(super) const RESUME_HOLD: Duration = Duration::from_secs(1);

pub(super) struct Member {
    pub(super) conn: ConnId,
    pub(super) player: bool,
    pub(super) disconnected_at: Option<Instant>,
    /// Last input or presence from the member's gateway.
    pub(super) seen: Instant,
    /// `conn` entered this room instance; false for a member restored from
    /// a snapshot until its connection enters again.
    pub(super) confirmed: bool,
    /// Away only because its gateway went quiet (not because its
    /// connection ended): hearing from the connection again brings it back.
    pub(super) silent: bool,
    /// The identity's key (see `InputKind::Enter`); 0: unknown.
    pub(super) key: u64,
    /// The gateway its connection is on, if known (see
    /// [`crate::gateways`]).
    pub(super) gateway: Option<String>,
    /// Back from away, its snake held still until then or until the
    /// player steers (see [`RESUME_HOLD`]).
    pub(super) held_until: Option<Instant>,
    /// Away because its gateway was found gone (see `park_gone_gateways`).
    pub(super) gateway_gone: bool,
}

impl Member {
    /// A member as its snapshot keeps it.
    pub(super) fn snapshot(&self, player: PlayerId) -> MemberSnapshot {
        MemberSnapshot {
            player,
            conn: self.conn,
            is_player: self.player,
            disconnected: self.disconnected_at.is_some(),
            key: self.key,
        }
    }
}

/// The members of a snapshot, as of `now`: those away then start their
/// grace period over, and none is confirmed until it enters again.
pub(super) fn restore(members: Vec<MemberSnapshot>, now: Instant) -> HashMap<PlayerId, Member> {
    members
        .into_iter()
        .map(|m| {
            let member = Member {
                conn: m.conn,
                player: m.is_player,
                disconnected_at: m.disconnected.then_some(now),
                seen: now,
                confirmed: false,
                silent: false,
                key: m.key,
                gateway: None,
                held_until: None,
                gateway_gone: false,
            };
            (m.player, member)
        })
        .collect()
}

/// The restored players a taken-over room waits for (spectators have no
/// snake to hold still).
pub(super) fn awaited(members: &HashMap<PlayerId, Member>) -> HashSet<PlayerId> {
    members.iter().filter(|(_, m)| m.player).map(|(id, _)| *id).collect()
}

impl<B: Backend> Room<B> {
    /// True if `input` comes from the player's current connection.
    pub(super) fn current(&self, player: PlayerId, conn: ConnId) -> bool {
        self.members.get(&player).is_some_and(|m| m.conn == conn)
    }

    pub(super) fn enter(&mut self, player: PlayerId, conn: ConnId, name: Option<String>, resync: bool, key: u64) {
        if self.superseded.contains_key(&conn) {
            // A resync or a late retry of a replaced connection.
            self.supersede(player, conn);
            return;
        }
        match self.members.get(&player) {
            // Someone else with the member's id (the id counter was lost
            // with Redis's data): the member keeps its snake, and the
            // newcomer is shut out as if superseded, never let in.
            Some(m) if m.conn != conn && m.key != 0 && key != 0 && m.key != key => {
                warn!(room = %self.id, %player, "another person entered with a member's id; refused");
                self.supersede(player, conn);
                return;
            }
            // A connection that had its world entering again does not take
            // the member back from a newer one that entered here since.
            Some(m) if m.conn != conn && resync && m.confirmed => {
                self.supersede(player, conn);
                return;
            }
            // A new connection of the player (a resume, a second tab): the
            // older one is shut out, so that only one steers.
            Some(m) if m.conn != conn => self.supersede(player, m.conn),
            _ => {}
        }
        self.awaiting.remove(&player);
        let full = self.members.len() >= MAX_MEMBERS;
        match self.members.get_mut(&player) {
            Some(m) => {
                // Back within the grace period, or a repeated enter. Heard
                // from now: the old connection's silence must not count
                // against the new one before its gateway's first presence.
                let was_away = m.disconnected_at.is_some();
                m.conn = conn;
                m.seen = Instant::now();
                m.confirmed = true;
                if m.key == 0 {
                    m.key = key;
                }
                if let (false, Some(name)) = (m.player, name) {
                    m.player = true;
                    self.game.add_player(player, clamp_name(name));
                    self.env.metrics.players.inc();
                }
                if was_away {
                    // Back: the snake moves on from where it stood, once
                    // the player steers or the hold is over.
                    m.disconnected_at = None;
                    m.silent = false;
                    m.held_until = Some(Instant::now() + RESUME_HOLD);
                }
            }
            None if full => {
                self.direct_error(player, "Room is full");
                return;
            }
            None => {
                let is_player = name.is_some();
                if let Some(name) = name {
                    self.game.add_player(player, clamp_name(name));
                    self.env.metrics.players.inc();
                }
                let member = Member {
                    conn,
                    player: is_player,
                    disconnected_at: None,
                    seen: Instant::now(),
                    confirmed: true,
                    silent: false,
                    key,
                    gateway: None,
                    held_until: None,
                    gateway_gone: false,
                };
                self.members.insert(player, member);
            }
        }
        self.empty_since = None;
        self.publish(FrameKind::Welcome(player), encode_welcome(&self.game));
    }

    /// Notes the gateway of `player`'s connection `conn` as it entered
    /// (only if that connection is the member's now), and tells the worker
    /// which gateways this room uses.
    pub(super) fn set_gateway(&mut self, player: PlayerId, conn: ConnId, gateway: Option<String>) {
        if let Some(m) = self.members.get_mut(&player).filter(|m| m.conn == conn) {
            m.gateway = gateway;
        }
        self.sync_gateways();
    }

    pub(super) fn sync_gateways(&mut self) {
        let now: HashSet<String> = self.members.values().filter_map(|m| m.gateway.clone()).collect();
        if now != self.on_gateways {
            self.env.gateways.moved(&self.on_gateways, &now);
            self.on_gateways = now;
        }
    }

    /// Gateways were found gone: their members' snakes are parked now, as
    /// if each connection had ended (the grace period starts), instead of
    /// running on unseen until the presence timeout. Taken for silent, so
    /// that a word from the connection brings it back should the verdict
    /// be wrong.
    pub(super) fn park_gone_gateways(&mut self) {
        let gone = self.gone_gateways.borrow_and_update().clone();
        let now = Instant::now();
        // A verdict withdrawn (the gateway is present again: its link alone
        // had broken): the members it parked are back at once, without
        // waiting for their gateway's next presence note, which might come
        // after their grace period.
        let cleared: Vec<PlayerId> = self
            .members
            .iter()
            .filter(|(_, m)| m.disconnected_at.is_some() && m.silent)
            .filter(|(_, m)| m.gateway_gone && m.gateway.as_ref().is_some_and(|g| !gone.contains(g)))
            .map(|(id, _)| *id)
            .collect();
        for player in cleared {
            self.dirty = true;
            self.set_away(player, None);
        }
        let parked: Vec<PlayerId> = self
            .members
            .iter()
            .filter(|(_, m)| m.disconnected_at.is_none() && m.gateway.as_ref().is_some_and(|g| gone.contains(g)))
            .map(|(id, _)| *id)
            .collect();
        if parked.is_empty() {
            return;
        }
        info!(room = %self.id, members = parked.len(), "their gateway is gone: snakes parked");
        for player in parked {
            self.dirty = true;
            self.set_away(player, Some(now));
            if let Some(m) = self.members.get_mut(&player) {
                m.silent = true;
                m.gateway_gone = true;
            }
        }
    }

    /// Remembers `conn` of `player` as replaced and tells its gateway, which
    /// closes it.
    pub(super) fn supersede(&mut self, player: PlayerId, conn: ConnId) {
        if self.superseded.len() >= MAX_SUPERSEDED {
            self.superseded.clear();
        }
        self.superseded.insert(conn, player);
        debug!(room = %self.id, %player, "connection superseded");
        self.publish(FrameKind::Superseded { player, conn }, Bytes::new());
    }

    /// Its current connection spoke: a member taken for away because its
    /// gateway went silent is back, and its snake moves on. A member whose
    /// connection ended stays away: a presence note written before the end
    /// may arrive after its `Disconnect`.
    pub(super) fn heard_from(&mut self, player: PlayerId) {
        if self.members.get(&player).is_some_and(|m| m.disconnected_at.is_some() && m.silent) {
            self.dirty = true;
            self.set_away(player, None);
        }
    }

    /// The player steers: its client has the world, and a snake held since
    /// its return moves on. (Only a turn says so: its gateway's presence
    /// note comes as soon as the connection has a room, world or not.)
    pub(super) fn steered(&mut self, player: PlayerId) {
        if let Some(m) = self.members.get_mut(&player)
            && m.held_until.take().is_some()
        {
            self.game.set_parked(player, false);
        }
    }

    /// Members back from away whose hold is over: their snakes move on.
    pub(super) fn release_resume_holds(&mut self, now: Instant) {
        for (id, m) in &mut self.members {
            if m.held_until.is_some_and(|t| t <= now) {
                m.held_until = None;
                self.game.set_parked(*id, false);
            }
        }
    }

    /// Marks a member away since `since` (its snake parks) or back (`None`:
    /// its snake moves on).
    pub(super) fn set_away(&mut self, player: PlayerId, since: Option<Instant>) {
        if let Some(m) = self.members.get_mut(&player) {
            m.disconnected_at = since;
            m.silent = false;
            m.held_until = None;
            m.gateway_gone = false;
        }
        self.game.set_parked(player, since.is_some());
    }

    /// Whether a taken-over room still waits for its players' worlds.
    pub(super) fn holding(&mut self, now: Instant) -> bool {
        match self.hold_until {
            Some(until) if now < until && !self.awaiting.is_empty() => true,
            Some(_) => {
                self.hold_until = None;
                self.awaiting.clear();
                false
            }
            None => false,
        }
    }

    /// Removes a member; with `release`, a player's seat comes free at once
    /// (should that be lost, it expires once the room no longer confirms it).
    pub(super) fn remove(&mut self, player: PlayerId, release: bool) {
        self.superseded.retain(|_, p| *p != player);
        if let Some(m) = self.members.remove(&player)
            && m.player
        {
            self.env.metrics.players.dec();
            if release {
                self.release_seat(player);
            }
        }
        self.game.remove_player(player);
        self.sync_gateways();
    }

    /// Removes disconnected members whose grace period is over, or whose
    /// snake died meanwhile (nothing left to come back to); a member whose
    /// gateway went silent counts as disconnected from then on, and its
    /// snake parks.
    pub(super) fn expire_disconnected(&mut self, now: Instant) {
        let silence = self.env.config.presence_timeout;
        let silent: Vec<PlayerId> = self
            .members
            .iter()
            .filter(|(_, m)| m.disconnected_at.is_none() && now.saturating_duration_since(m.seen) >= silence)
            .map(|(id, _)| *id)
            .collect();
        for player in silent {
            self.dirty = true;
            self.set_away(player, Some(now));
            if let Some(m) = self.members.get_mut(&player) {
                m.silent = true;
            }
        }
        let grace = self.env.config.grace;
        let expired: Vec<PlayerId> = self
            .members
            .iter()
            .filter(|(id, m)| {
                m.disconnected_at.is_some_and(|t| {
                    now.saturating_duration_since(t) >= grace || !self.game.player(**id).is_some_and(|p| p.alive)
                })
            })
            .map(|(id, _)| *id)
            .collect();
        for player in expired {
            debug!(room = %self.id, %player, "grace period over");
            self.remove(player, true);
        }
    }
}

/// Names are checked by the gateway; the bus is still not trusted with more
/// than 15 characters.
fn clamp_name(name: String) -> String {
    name.chars().filter(|c| !c.is_control()).take(snakepit_protocol::client::NAME_MAX_CHARS).collect()
}
