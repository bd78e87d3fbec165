//! Identifiers that cross process boundaries, validated where they enter.

use std::fmt;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// A player's (or spectator's) identity, given by the gateway. Public: it is
/// shown to other players. The resume token, not this id, proves ownership.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct PlayerId(pub Uuid);

impl PlayerId {
    pub fn random() -> Self {
        Self(Uuid::new_v4())
    }
}

impl fmt::Display for PlayerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.hyphenated().fmt(f)
    }
}

/// A room's name: 1 to 24 characters of `A-Z a-z 0-9 _ -`, so it is safe in a
/// Redis key, a URL and a log line without escaping.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct RoomId(String);

pub const ROOM_ID_MAX_LEN: usize = 24;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("Invalid room id")]
pub struct InvalidRoomId;

impl RoomId {
    pub fn parse(s: &str) -> Result<Self, InvalidRoomId> {
        let ok = !s.is_empty()
            && s.len() <= ROOM_ID_MAX_LEN
            && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
        if ok { Ok(Self(s.to_owned())) } else { Err(InvalidRoomId) }
    }

    /// A fresh room name for matchmaking: `r-` and eight hex digits.
    pub fn random() -> Self {
        let n = Uuid::new_v4().as_u128() as u32;
        Self(format!("r-{n:08x}"))
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
        r.0
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
