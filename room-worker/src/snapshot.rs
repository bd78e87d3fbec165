//! What a room writes to the store so that another worker can take over:
//! the whole game (world, snakes, scores, the RNG) and its members.

use serde::{Deserialize, Serialize};
use snakepit_shared::{ConnId, PlayerId};

use crate::game::Game;

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct MemberSnapshot {
    pub player: PlayerId,
    pub conn: ConnId,
    pub is_player: bool,
    pub disconnected: bool,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RoomSnapshot {
    pub game: Game,
    pub members: Vec<MemberSnapshot>,
}

#[derive(Debug, thiserror::Error)]
#[error("snapshot codec: {0}")]
pub struct SnapshotError(String);

impl RoomSnapshot {
    pub fn encode(&self) -> Result<Vec<u8>, SnapshotError> {
        rmp_serde::to_vec(self).map_err(|e| SnapshotError(e.to_string()))
    }

    pub fn decode(bytes: &[u8]) -> Result<Self, SnapshotError> {
        rmp_serde::from_slice(bytes).map_err(|e| SnapshotError(e.to_string()))
    }
}
