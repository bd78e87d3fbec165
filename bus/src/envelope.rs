//! Messages on the bus between gateways and room workers. On Redis they are
//! MessagePack; in memory they are passed as they are. The client frame
//! inside an [`OutFrame`] is encoded once, by the room.

use bytes::Bytes;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use snakepit_protocol::client::Direction;
use snakepit_protocol::ids::{PlayerId, RoomId};
use uuid::Uuid;

/// One connection of a player: a player who reconnects gets a new one, and
/// the room ignores what an older connection of the same player still sends.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ConnId(pub Uuid);

impl ConnId {
    pub fn random() -> Self {
        Self(Uuid::new_v4())
    }
}

/// Gateway -> room. Tagged with the player id by the gateway, never by the
/// client, so a client can only steer its own snake.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RoomInput {
    pub player: PlayerId,
    pub conn: ConnId,
    pub kind: InputKind,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum InputKind {
    /// The connection enters the room; `name` is `None` for a spectator.
    /// Idempotent: the gateway repeats it until the welcome arrives. A player
    /// who is still in the room (within the grace period) gets its snake back.
    ///
    /// A new connection of a member (a resume, a second tab) takes the
    /// member over, and the room tells the older one it is
    /// [`FrameKind::Superseded`]. `resync` marks an enter again of a
    /// connection that had its world already (after a gap or a new owner):
    /// that one never takes a member back from a newer connection.
    Enter {
        name: Option<String>,
        #[serde(default)]
        resync: bool,
        /// The identity's key: random, made with the player's id and kept
        /// in its session. A member entering again with the same key is the
        /// same person (a resume); with another key it is someone else who
        /// was given the same id (the id counter was lost with Redis's
        /// data), and is refused. 0: unknown (an older gateway).
        #[serde(default)]
        key: u64,
        /// The id the member's gateway is present under (see
        /// `Ownership::be_present`): if that process dies, the room parks
        /// the member's snake at once rather than after the presence
        /// timeout. None: unknown (an older gateway, or standalone).
        #[serde(default)]
        gateway: Option<String>,
    },
    Join,
    Turn(Direction),
    /// The connection dropped: an alive snake keeps going for the grace
    /// period, then dies, unless the player enters again.
    Disconnect,
    /// The player left the room on purpose: an alive snake dies now.
    Leave,
    /// A gateway still holds these members' connections: sent every few
    /// seconds per room by each gateway that has members in it, with nil
    /// ids on the envelope. A member that no gateway vouches for is treated
    /// as disconnected: its gateway died without a word.
    Presence(Vec<(PlayerId, ConnId)>),
}

impl RoomInput {
    pub fn presence(members: Vec<(PlayerId, ConnId)>) -> Self {
        Self { player: PlayerId::NONE, conn: ConnId(Uuid::nil()), kind: InputKind::Presence(members) }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum FrameKind {
    /// One tick's changes, for every member.
    Tick,
    /// The world as of `tick`, for one member; its later frames follow.
    Welcome(PlayerId),
    /// Anything else for one member (an error).
    Direct(PlayerId),
    /// The player's connection `conn` was replaced by a newer one: that
    /// connection closes (4009) without leaving the room, which the newer
    /// connection now holds. The payload is empty.
    Superseded { player: PlayerId, conn: ConnId },
    /// The room parked the player's snake on the `Disconnect` of `conn`:
    /// every frame before this one was made before the snake stood still,
    /// so a draining gateway closes `conn` once it has forwarded them. The
    /// payload is empty.
    Parked { player: PlayerId, conn: ConnId },
}

/// Room -> gateways: one client frame (a JSON array of commands).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct OutFrame {
    /// Ownership epoch of the room: frames from an older epoch are stale.
    pub epoch: u64,
    pub tick: u64,
    pub kind: FrameKind,
    pub payload: Bytes,
}

/// Cluster-wide notices.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Notice {
    /// A room entered the directory and wants an owner.
    RoomCreated(RoomId),
    /// A worker stopped and released its rooms: take them over.
    RoomsReleased,
}

/// The messages of a payload that holds several, one after the other (a
/// gateway's inputs for one room, sent together): each is handed to `take`
/// in turn, until it says its subscriber is gone (`Ok(false)`). A malformed
/// one is an error; those before it were handed over.
pub fn decode_each<T: DeserializeOwned>(
    payload: &[u8],
    mut take: impl FnMut(T) -> bool,
) -> Result<bool, rmp_serde::decode::Error> {
    let mut rest = payload;
    while !rest.is_empty() {
        // Reading from a slice moves it past what was read.
        if !take(rmp_serde::from_read(&mut rest)?) {
            return Ok(false);
        }
    }
    Ok(true)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn input(kind: InputKind) -> RoomInput {
        RoomInput { player: PlayerId(7), conn: ConnId::random(), kind }
    }

    /// Inputs sent together come out whole and in order; a malformed tail
    /// is an error after those before it; a subscriber gone stops it.
    #[test]
    fn several_messages_one_after_the_other_decode_in_order() {
        let sent = [input(InputKind::Join), input(InputKind::Turn(Direction::Up)), input(InputKind::Leave)];
        let mut payload = Vec::new();
        for i in &sent {
            payload.extend(rmp_serde::to_vec(i).unwrap());
        }
        let mut got = Vec::new();
        assert!(
            decode_each::<RoomInput>(&payload, |i| {
                got.push(i);
                true
            })
            .unwrap()
        );
        assert_eq!(got, sent);

        let one = rmp_serde::to_vec(&sent[0]).unwrap();
        let mut torn = one.clone();
        torn.extend_from_slice(&one[..one.len() - 1]);
        let mut count = 0;
        assert!(
            decode_each::<RoomInput>(&torn, |_| {
                count += 1;
                true
            })
            .is_err()
        );
        assert_eq!(count, 1, "the whole input before the torn one");

        let mut count = 0;
        let stopped = decode_each::<RoomInput>(&payload, |_| {
            count += 1;
            false
        });
        assert!(!stopped.unwrap());
        assert_eq!(count, 1);
    }
}
