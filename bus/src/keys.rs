//! Every channel and key name in one place, under a configurable prefix so
//! that several clusters can share one Redis.

use snakepit_protocol::ids::RoomId;

#[derive(Clone, Debug)]
pub struct Keys {
    prefix: String,
    /// The prefix of the keys and channels not of one room: `prefix`, or
    /// `{prefix}` on a Redis Cluster (one slot for all of them).
    global: String,
}

impl Default for Keys {
    fn default() -> Self {
        Self::new("snakepit")
    }
}

impl Keys {
    pub fn new(prefix: impl Into<String>) -> Self {
        let prefix = prefix.into();
        Self { global: prefix.clone(), prefix }
    }

    /// The names on a Redis Cluster: a room's keys and channels as
    /// [`Keys::new`] names them (on its `{room}` slot), every other under
    /// `{prefix}`, so that they share one slot: the seat scripts touch the
    /// directory, the seats, the capacities and the id counter at once, and
    /// one `PUBSUB SHARDNUMSUB` asks for every presence channel.
    pub fn clustered(prefix: impl Into<String>) -> Self {
        let prefix = prefix.into();
        Self { global: format!("{{{prefix}}}"), prefix }
    }

    /// Pub/sub: inputs for a room (gateways publish, the owner subscribes).
    pub fn room_in(&self, room: &RoomId) -> String {
        format!("{}:room:{{{}}}:in", self.prefix, room)
    }

    /// Pub/sub: inputs for a room that a gateway gathered and sends as one
    /// message (see `redis_inputs`); same slot as [`Keys::room_in`].
    pub fn room_in_batch(&self, room: &RoomId) -> String {
        format!("{}:room:{{{}}}:in-batch", self.prefix, room)
    }

    /// Pub/sub: frames of a room (the owner publishes, gateways subscribe).
    pub fn room_out(&self, room: &RoomId) -> String {
        let mut channel = String::new();
        self.write_room_out(&mut channel, room);
        channel
    }

    /// [`Keys::room_out`], appended to `out` (a buffer reused per frame).
    pub fn write_room_out(&self, out: &mut String, room: &RoomId) {
        for part in [self.prefix.as_str(), ":room:{", room.as_str(), "}:out"] {
            out.push_str(part);
        }
    }

    /// Pub/sub: cluster notices (a room was created, ...).
    pub fn notices(&self) -> String {
        format!("{}:notices", self.global)
    }

    /// Sorted set: room id scored by seats taken (the directory).
    pub fn directory(&self) -> String {
        format!("{}:rooms", self.global)
    }

    /// Sorted set: `room/player` scored by when the seat's hold runs out
    /// (ms, Redis time). A room's count in the directory is its seats here.
    pub fn seats(&self) -> String {
        format!("{}:rooms:seats", self.global)
    }

    /// Hash: room id -> capacity.
    pub fn capacities(&self) -> String {
        format!("{}:rooms:capacity", self.global)
    }

    /// String with TTL: a session by resume token.
    pub fn session(&self, token: &str) -> String {
        format!("{}:session:{}", self.prefix, token)
    }

    /// Sorted set: best score per name.
    pub fn top_scores(&self) -> String {
        format!("{}:top_scores", self.global)
    }

    /// Counter: the last person's id handed out.
    pub fn player_ids(&self) -> String {
        format!("{}:player_ids", self.global)
    }

    /// Sorted set: live workers, scored by heartbeat expiry (ms, Redis time).
    pub fn workers(&self) -> String {
        format!("{}:workers", self.global)
    }

    /// Channel a live process (a worker, or a gateway by its
    /// `gateway-<uuid>` id) stays subscribed to: nothing is published on
    /// it, its subscriber count says whether the process is alive.
    pub fn presence(&self, process: &str) -> String {
        format!("{}:present:{}", self.global, process)
    }

    /// String with TTL: `worker:epoch` of the room's owner.
    pub fn lease(&self, room: &RoomId) -> String {
        format!("{}:room:{{{}}}:lease", self.prefix, room)
    }

    /// Counter: the room's last epoch.
    pub fn epoch(&self, room: &RoomId) -> String {
        format!("{}:room:{{{}}}:epoch", self.prefix, room)
    }

    /// Hash: `epoch` and `data` of the room's last snapshot.
    pub fn snapshot(&self, room: &RoomId) -> String {
        format!("{}:room:{{{}}}:snapshot", self.prefix, room)
    }

    /// Hash: name -> colour of the best score.
    pub fn top_colours(&self) -> String {
        format!("{}:top_scores:colour", self.global)
    }

    /// String, no TTL: the store's generation, set by the first caller
    /// that finds it missing (see `Store::generation`).
    pub fn generation(&self) -> String {
        format!("{}:generation", self.global)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_carry_the_prefix_and_a_hash_tag() {
        let k = Keys::new("t1");
        let r = RoomId::parse("abc").unwrap();
        assert_eq!(k.room_in(&r), "t1:room:{abc}:in");
        assert_eq!(k.room_out(&r), "t1:room:{abc}:out");
        assert!(k.directory().starts_with("t1:"));
        assert_ne!(Keys::new("a").session("x"), Keys::new("b").session("x"));
    }

    #[test]
    fn on_a_cluster_global_names_share_a_slot_and_rooms_keep_theirs() {
        use crate::redis_shards::slot_of;
        let k = Keys::clustered("t1");
        let r = RoomId::parse("abc").unwrap();
        assert_eq!(k.room_in(&r), "t1:room:{abc}:in");
        let global = [
            k.directory(),
            k.seats(),
            k.capacities(),
            k.player_ids(),
            k.workers(),
            k.presence("w-1"),
            k.presence("gateway-2"),
            k.notices(),
            k.top_scores(),
            k.top_colours(),
            k.generation(),
        ];
        for name in &global {
            assert_eq!(slot_of(name.as_bytes()), slot_of(b"t1"), "{name}");
        }
        assert_eq!(slot_of(k.lease(&r).as_bytes()), slot_of(k.snapshot(&r).as_bytes()));
        assert_eq!(slot_of(k.lease(&r).as_bytes()), slot_of(k.room_out(&r).as_bytes()));
        assert_eq!(slot_of(k.room_in(&r).as_bytes()), slot_of(k.room_in_batch(&r).as_bytes()));
    }
}
