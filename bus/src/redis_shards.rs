//! Where a key or a channel lives on a Redis Cluster: its slot, and the
//! master that serves the slot.
//!
//! A name's slot is CRC16 of its hash tag (the part between the first `{`
//! and the next `}`, if not empty; else the whole name) modulo 16384, as
//! every Redis Cluster client computes it. Which master serves which slots
//! comes from `CLUSTER SLOTS`. The sharded subscriptions keep this map to
//! know which master's connection a channel needs, and read it again when
//! a link breaks or a slot moves.

use redis::Value;

use crate::backend::BusError;

/// Slots of a Redis Cluster.
pub(crate) const SLOTS: u16 = 16384;

/// The slot of a key or a shard channel.
pub(crate) fn slot_of(name: &[u8]) -> u16 {
    let tagged = name
        .iter()
        .position(|b| *b == b'{')
        .and_then(|open| {
            let rest = &name[open + 1..];
            rest.iter().position(|b| *b == b'}').map(|close| &rest[..close])
        })
        .filter(|tag| !tag.is_empty());
    crc16::State::<crc16::XMODEM>::calculate(tagged.unwrap_or(name)) % SLOTS
}

/// A hash tag whose slot is `slot`: a name holding `{tag}` lives there.
pub(crate) fn tag_for_slot(slot: u16) -> String {
    // About 16,384 tries on average, each a CRC of a few bytes: well under
    // a millisecond, and only when a link is made.
    (0u64..).map(|i| format!("p{i:x}")).find(|tag| slot_of(tag.as_bytes()) == slot % SLOTS).unwrap_or_default()
}

/// A master's address, as the cluster announces it.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) struct Node {
    pub(crate) host: String,
    pub(crate) port: u16,
}

impl std::fmt::Display for Node {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.host, self.port)
    }
}

/// Which master serves each slot.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct SlotMap {
    /// `(first, last, master)`, sorted by `first`.
    ranges: Vec<(u16, u16, Node)>,
}

impl SlotMap {
    /// Reads a `CLUSTER SLOTS` reply. A master announced with no host
    /// ("" or "?": it does not know its address) is at `asked_host`, the
    /// node that answered.
    pub(crate) fn parse(reply: &Value, asked_host: &str) -> Result<Self, BusError> {
        let bad = || BusError::Codec("unexpected CLUSTER SLOTS reply".into());
        let Value::Array(entries) = reply else { return Err(bad()) };
        let mut ranges = Vec::with_capacity(entries.len());
        for entry in entries {
            let Value::Array(fields) = entry else { return Err(bad()) };
            let (Some(Value::Int(first)), Some(Value::Int(last)), Some(Value::Array(master))) =
                (fields.first(), fields.get(1), fields.get(2))
            else {
                return Err(bad());
            };
            let host = match master.first() {
                Some(Value::BulkString(h)) => String::from_utf8_lossy(h).into_owned(),
                Some(Value::SimpleString(h)) => h.clone(),
                _ => return Err(bad()),
            };
            let Some(Value::Int(port)) = master.get(1) else { return Err(bad()) };
            let host = if host.is_empty() || host == "?" { asked_host.to_owned() } else { host };
            let (Ok(first), Ok(last), Ok(port)) = (u16::try_from(*first), u16::try_from(*last), u16::try_from(*port))
            else {
                return Err(bad());
            };
            if first > last || last >= SLOTS {
                return Err(bad());
            }
            ranges.push((first, last, Node { host, port }));
        }
        ranges.sort_by_key(|(first, _, _)| *first);
        Ok(Self { ranges })
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.ranges.is_empty()
    }

    /// The master serving `slot`, if any does (none while a failover is
    /// under way, or in a cluster that lost a shard).
    pub(crate) fn node(&self, slot: u16) -> Option<&Node> {
        let i = self.ranges.partition_point(|(first, _, _)| *first <= slot);
        let (_, last, node) = self.ranges.get(i.checked_sub(1)?)?;
        (slot <= *last).then_some(node)
    }

    /// A slot `node` serves (its first), if it is a master.
    pub(crate) fn a_slot_of(&self, node: &Node) -> Option<u16> {
        self.ranges.iter().find(|(_, _, n)| n == node).map(|(first, _, _)| *first)
    }

    /// The masters (for the test cluster).
    #[cfg(any(test, feature = "test-support"))]
    pub(crate) fn masters(&self) -> std::collections::BTreeSet<&Node> {
        self.ranges.iter().map(|(_, _, n)| n).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_follow_the_hash_tag_as_redis_computes_them() {
        // Values from the Redis Cluster specification and `CLUSTER KEYSLOT`.
        assert_eq!(slot_of(b"123456789"), 0x31c3 % SLOTS);
        assert_eq!(slot_of(b"foo"), 12182);
        assert_eq!(slot_of(b"{user1000}.following"), slot_of(b"{user1000}.followers"));
        assert_eq!(slot_of(b"snakepit:room:{abc}:in"), slot_of(b"abc"));
        // An empty tag is no tag: the whole name is hashed.
        assert_eq!(slot_of(b"foo{}{bar}"), crc16::State::<crc16::XMODEM>::calculate(b"foo{}{bar}") % SLOTS);
    }

    #[test]
    fn a_tag_can_be_found_for_every_slot() {
        for slot in [0, 1, 5460, 5461, 10922, 16383] {
            let tag = tag_for_slot(slot);
            assert_eq!(slot_of(format!("x:{{{tag}}}:y").as_bytes()), slot);
        }
    }

    fn node(port: i64) -> Value {
        Value::Array(vec![
            Value::BulkString(b"127.0.0.1".to_vec()),
            Value::Int(port),
            Value::BulkString(b"id".to_vec()),
        ])
    }

    #[test]
    fn the_slot_map_finds_each_slots_master() {
        let reply = Value::Array(vec![
            Value::Array(vec![Value::Int(5461), Value::Int(10922), node(7001), node(7004)]),
            Value::Array(vec![Value::Int(0), Value::Int(5460), node(7000)]),
            Value::Array(vec![Value::Int(10923), Value::Int(16383), node(7002)]),
        ]);
        let map = SlotMap::parse(&reply, "127.0.0.1").unwrap();
        assert_eq!(map.node(0).unwrap().port, 7000);
        assert_eq!(map.node(5460).unwrap().port, 7000);
        assert_eq!(map.node(5461).unwrap().port, 7001);
        assert_eq!(map.node(16383).unwrap().port, 7002);
        assert_eq!(map.masters().len(), 3);
        assert_eq!(map.a_slot_of(&Node { host: "127.0.0.1".into(), port: 7002 }), Some(10923));
        // A hole (a shard with no master) has nobody.
        let holed = Value::Array(vec![Value::Array(vec![Value::Int(0), Value::Int(99), node(7000)])]);
        assert!(SlotMap::parse(&holed, "h").unwrap().node(100).is_none());
        assert!(SlotMap::parse(&Value::Int(3), "h").is_err());
    }
}
