//! What a room writes to the store so that another worker can take over:
//! the whole game (world, snakes, scores, the RNG) and its members.

use serde::{Deserialize, Serialize};
use snakepit_bus::{ConnId, PlayerId};

use snakepit_game::game::Game;

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct MemberSnapshot {
    pub player: PlayerId,
    pub conn: ConnId,
    pub is_player: bool,
    pub disconnected: bool,
    /// The identity's key (see `InputKind::Enter`); 0 in an older snapshot.
    #[serde(default)]
    pub key: u64,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RoomSnapshot {
    pub game: Game,
    pub members: Vec<MemberSnapshot>,
}

#[derive(Debug, thiserror::Error)]
#[error("snapshot codec: {0}")]
pub struct SnapshotError(String);

/// A room's snapshot as it is written: the same encoding as
/// [`RoomSnapshot`], from the live game without a copy of it.
#[derive(Serialize)]
pub struct RoomSnapshotRef<'a> {
    pub game: &'a Game,
    pub members: &'a [MemberSnapshot],
}

/// A snapshot's usual size: written at once, without growing the buffer.
const USUAL_SIZE: usize = 4096;

impl RoomSnapshotRef<'_> {
    /// Encodes it, the grid's cells packed or one by one (see
    /// `RoomConfig::packed_snapshots`).
    pub fn encode(&self, packed: bool) -> Result<Vec<u8>, SnapshotError> {
        let mut bytes = Vec::with_capacity(USUAL_SIZE);
        snakepit_game::grid::encoded_as(packed, || rmp_serde::encode::write(&mut bytes, self))
            .map_err(|e| SnapshotError(e.to_string()))?;
        Ok(bytes)
    }
}

impl RoomSnapshot {
    /// Encodes it with the grid packed.
    pub fn encode(&self) -> Result<Vec<u8>, SnapshotError> {
        RoomSnapshotRef { game: &self.game, members: &self.members }.encode(true)
    }

    /// Decodes a snapshot and checks its game (see `Game::check`): one
    /// that would not run is an error, as one that does not decode.
    pub fn decode(bytes: &[u8]) -> Result<Self, SnapshotError> {
        let snapshot: Self = rmp_serde::from_slice(bytes).map_err(|e| SnapshotError(e.to_string()))?;
        snapshot.game.check().map_err(SnapshotError)?;
        Ok(snapshot)
    }
}

#[cfg(test)]
mod tests {
    use snakepit_bus::PlayerId;

    use super::*;
    use snakepit_game::settings::GameSettings;

    /// A game of one person and three robots, all born.
    fn with_robots() -> Game {
        let settings = GameSettings { robots: 3, ..GameSettings::default() };
        let mut game = Game::new(settings, 9);
        // Parking credit is earned while playing; the room sets it so.
        game.set_park_allowance(100);
        game.add_player(PlayerId(1), "ann".into());
        game.join(PlayerId(1)).unwrap();
        game.step();
        game.clear_events();
        game
    }

    fn robot_ids(game: &Game) -> Vec<PlayerId> {
        game.players().iter().filter(|p| p.alive && p.id.is_robot()).map(|p| p.id).collect()
    }

    fn round_trip(game: &Game) -> Game {
        let bytes = RoomSnapshot { game: game.clone(), members: vec![] }.encode().unwrap();
        RoomSnapshot::decode(&bytes).unwrap().game
    }

    #[test]
    fn robots_and_their_numbering_survive_a_snapshot() {
        let game = with_robots();
        let mut restored = round_trip(&game);
        assert_eq!(robot_ids(&restored), vec![PlayerId(-1), PlayerId(-2), PlayerId(-3)]);
        for id in robot_ids(&game) {
            assert_eq!(restored.player(id).unwrap().snake, game.player(id).unwrap().snake);
        }
        assert_eq!(restored.grid(), game.grid());
        // A robot dies; its replacement, a second later, has a new number:
        // the counter came through, no id is given twice in the room.
        // (The person stands parked meanwhile: it keeps the game going.)
        restored.set_park_allowance(100);
        restored.set_parked(PlayerId(1), true);
        restored.kill(PlayerId(-1));
        for _ in 0..10 {
            restored.step();
        }
        let ids = robot_ids(&restored);
        assert_eq!(ids.len(), 3, "{ids:?}");
        assert!(ids.contains(&PlayerId(-4)), "the replacement is robot 4: {ids:?}");
        assert!(!ids.contains(&PlayerId(-1)));
    }

    /// A snapshot written before robots existed (no `robots` in the
    /// settings, no robot counter or wait in the game) still loads, with
    /// none. The layout is MessagePack's: a struct is an array of its
    /// fields, so the old one is the new one without its last fields.
    #[test]
    fn a_snapshot_from_before_robots_still_loads() {
        let mut game = Game::new(GameSettings::default(), 3);
        game.add_player(PlayerId(1), "ann".into());
        game.join(PlayerId(1)).unwrap();
        game.step();
        game.clear_events();
        let new = RoomSnapshot { game: game.clone(), members: vec![] }.encode().unwrap();
        let settings = rmp_serde::to_vec(game.settings()).unwrap();
        // [snapshot: 2 fields] [game: 10 fields] [settings: 13 fields ... robots = 0]
        // ... [robots_made = 0] [robots_wait_until] [members: empty]
        assert_eq!(&new[..3], &[0x92, 0x9a, 0x9d]);
        assert_eq!(new[2 + settings.len() - 1], 0x00, "robots, last of the settings");
        let wait = rmp_serde::to_vec(&(game.tick() + 10)).unwrap();
        let tail_len = 1 + wait.len() + 1;
        let tail = &new[new.len() - tail_len..];
        assert_eq!(tail[0], 0x00, "robots_made");
        assert_eq!(tail[tail.len() - 1], 0x90, "no members");
        let mut old = vec![0x92, 0x98, 0x9c];
        old.extend_from_slice(&new[3..2 + settings.len() - 1]);
        old.extend_from_slice(&new[2 + settings.len()..new.len() - tail_len]);
        old.push(0x90);
        let loaded = RoomSnapshot::decode(&old).unwrap().game;
        assert_eq!(loaded.settings(), game.settings());
        assert_eq!(loaded.settings().robots, 0);
        assert_eq!(loaded.grid(), game.grid());
        assert_eq!(loaded.player(PlayerId(1)).unwrap().snake, game.player(PlayerId(1)).unwrap().snake);
    }

    /// A snapshot edited as a generic value (with field names), then
    /// encoded as MessagePack again.
    fn edited(edit: impl FnOnce(&mut serde_json::Value)) -> Vec<u8> {
        let snapshot = RoomSnapshot { game: with_robots(), members: Vec::new() };
        let mut value = serde_json::to_value(&snapshot).unwrap();
        // The cells as a snapshot written before they were packed had
        // them, [character, colour] each: one that still reads.
        let packed: Vec<serde_json::Value> = value["game"]["grid"]["cells"].as_array().unwrap().clone();
        value["game"]["grid"]["cells"] = packed.chunks(2).map(|c| serde_json::json!([c[0], c[1]])).collect();
        edit(&mut value["game"]);
        rmp_serde::to_vec(&value).unwrap()
    }

    /// Found by fuzzing (fuzz/fuzz_targets/room_snapshot.rs): a snapshot
    /// that decoded but did not fit together panicked the room at its
    /// first step, and every worker that took the room over after it.
    #[test]
    fn a_snapshot_that_would_not_run_is_refused() {
        assert!(RoomSnapshot::decode(&edited(|_| {})).is_ok(), "the unedited one loads");
        let wider = edited(|g| g["grid"]["width"] = 60.into());
        assert!(RoomSnapshot::decode(&wider).unwrap_err().to_string().contains("a grid of 60x25"));
        let holey = edited(|g| {
            g["grid"]["cells"].as_array_mut().unwrap().pop();
        });
        assert!(RoomSnapshot::decode(&holey).unwrap_err().to_string().contains("do not fill"));
        let off_field = edited(|g| g["players"][0]["snake"][0] = serde_json::json!({"x": 200, "y": 3}));
        assert!(RoomSnapshot::decode(&off_field).unwrap_err().to_string().contains("leaves the field"));
        let bad_settings = edited(|g| g["settings"]["tick_rate"] = 0.0.into());
        assert!(RoomSnapshot::decode(&bad_settings).unwrap_err().to_string().contains("settings"));
    }
}
