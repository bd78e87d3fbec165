//! The two lists a client is shown: the rooms with their seats (`rooms`)
//! and the best scores (`top_scores`). The directory and the score table
//! of the bus hold them in these shapes, and the frame writer writes them.

use serde::{Deserialize, Serialize};

use crate::ids::RoomId;

/// A room as listed in the directory.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoomInfo {
    pub id: RoomId,
    /// Seats taken by players (spectators take none).
    pub players: u16,
    pub capacity: u16,
}

/// A name's best score.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScoreEntry {
    pub name: String,
    pub score: u64,
    pub colour: u8,
}
