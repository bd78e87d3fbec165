//! Identifiers that cross process boundaries, validated where they enter.

use std::fmt;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// A player's (or spectator's) identity. Public: it is shown to other
/// players, as a JSON integer as in the original protocol. The resume token,
/// not this id, proves ownership.
///
/// People get positive ids from one counter: the process's in standalone
/// mode, the cluster's (in Redis) otherwise, so an id names one person
/// across every room. Robot snakes get negative ids, numbered by their room;
/// they never leave it, so they need no shared counter, and a client can
/// tell them apart by the sign alone.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct PlayerId(pub i64);

/// Ids stay integers that a JavaScript client reads exactly (below 2^53).
pub const MAX_PLAYER_ID: i64 = (1 << 53) - 1;

impl PlayerId {
    /// The id of no one: presence notes carry it on their envelope.
    pub const NONE: PlayerId = PlayerId(0);

    /// A random person's id (tests and tools, which share no counter): in
    /// 2^40..2^53, far above what a counter reaches.
    pub fn random() -> Self {
        let n = (Uuid::new_v4().as_u128() as u64) & ((1 << 53) - 1);
        Self((n | (1 << 40)) as i64)
    }

    /// The `n`th robot of a room (n from 1).
    pub fn robot(n: u32) -> Self {
        Self(-i64::from(n))
    }

    pub fn is_robot(self) -> bool {
        self.0 < 0
    }
}

impl fmt::Display for PlayerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// A room's name: 1 to 24 characters of `A-Z a-z 0-9 _ -`, so it is safe in a
/// Redis key, a URL and a log line without escaping.
///
/// Shared, not copied: a room's id goes with each of its frames to the
/// publisher, and a clone is a count, not an allocation.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct RoomId(Arc<str>);

pub const ROOM_ID_MAX_LEN: usize = 24;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("Invalid room id")]
pub struct InvalidRoomId;

impl RoomId {
    pub fn parse(s: &str) -> Result<Self, InvalidRoomId> {
        let ok = !s.is_empty()
            && s.len() <= ROOM_ID_MAX_LEN
            && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
        if ok { Ok(Self(Arc::from(s))) } else { Err(InvalidRoomId) }
    }

    /// A fresh room name for matchmaking: `r-` and eight hex digits.
    pub fn random() -> Self {
        let n = Uuid::new_v4().as_u128() as u32;
        Self(Arc::from(format!("r-{n:08x}")))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for RoomId {
    type Error = InvalidRoomId;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        Self::parse(&s)
    }
}

impl From<RoomId> for String {
    fn from(r: RoomId) -> String {
        r.0.to_string()
    }
}

impl fmt::Display for RoomId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn room_ids_are_checked() {
        assert!(RoomId::parse("lobby-1_A").is_ok());
        assert!(RoomId::parse("").is_err());
        assert!(RoomId::parse(&"a".repeat(25)).is_err());
        assert!(RoomId::parse("a b").is_err());
        assert!(RoomId::parse("a:b").is_err());
        assert!(RoomId::parse("é").is_err());
        assert!(RoomId::parse(RoomId::random().as_str()).is_ok());
    }

    #[test]
    fn room_id_deserialization_validates() {
        assert!(serde_json::from_str::<RoomId>("\"ok\"").is_ok());
        assert!(serde_json::from_str::<RoomId>("\"not ok\"").is_err());
    }
}
