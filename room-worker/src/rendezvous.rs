//! Rendezvous (highest random weight) hashing: which live worker should own
//! a room. Every worker computes the same answer from the same list, and a
//! worker joining or leaving moves only the rooms it wins or held.
//!
//! Every build must agree, so the weight is XXH3 (64 bits), whose output is
//! fixed by its specification, never the standard library's hasher, which
//! may change between Rust releases: two workers built by different
//! toolchains would otherwise each think the other owns a room. A test
//! pins known values.

use snakepit_bus::RoomId;
use xxhash_rust::xxh3::xxh3_64;

/// The worker with the highest weight for `room`, if any.
pub fn owner<'a>(room: &RoomId, workers: &'a [String]) -> Option<&'a str> {
    workers.iter().max_by_key(|w| weight(room, w)).map(String::as_str)
}

/// The hash of `room`, a 0 byte and `worker`: room ids hold no 0 byte, so
/// no two pairs hash the same bytes.
fn weight(room: &RoomId, worker: &str) -> u64 {
    let mut bytes = Vec::with_capacity(room.as_str().len() + 1 + worker.len());
    bytes.extend_from_slice(room.as_str().as_bytes());
    bytes.push(0);
    bytes.extend_from_slice(worker.as_bytes());
    xxh3_64(&bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Also computed by Python's `xxhash` package (xxh3_64_intdigest), an
    /// implementation independent of this crate's.
    const PINNED: [u64; 3] = [11_627_760_302_961_079_500, 15_333_781_972_164_130_410, 9_375_195_066_185_804_412];
    const PINNED_OWNERS: [&str; 6] = ["w3", "w1", "w3", "w3", "w3", "w3"];

    fn rooms(n: usize) -> Vec<RoomId> {
        (0..n).map(|i| RoomId::parse(&format!("r{i}")).unwrap()).collect()
    }

    /// Pinned: a change here moves rooms between workers of mixed builds.
    #[test]
    fn weights_and_owners_are_fixed() {
        let r = |s: &str| RoomId::parse(s).unwrap();
        assert_eq!(xxh3_64(b""), 0x2d06_8005_38d3_94c2, "XXH3 reference value");
        let got: Vec<u64> = [("lobby", "w1"), ("lobby", "w2"), ("r-0000abcd", "room-worker-7f9c")]
            .iter()
            .map(|(room, w)| weight(&r(room), w))
            .collect();
        assert_eq!(got, PINNED);
        let workers: Vec<String> = ["w1", "w2", "w3"].map(String::from).to_vec();
        let owners: Vec<&str> =
            ["a", "b", "c", "d", "e", "f"].iter().map(|n| owner(&r(n), &workers).unwrap()).collect();
        assert_eq!(owners, PINNED_OWNERS);
    }

    #[test]
    fn spreads_rooms_over_workers() {
        let workers: Vec<String> = ["w1", "w2", "w3"].map(String::from).to_vec();
        let mut count = std::collections::HashMap::new();
        for r in rooms(3000) {
            *count.entry(owner(&r, &workers).unwrap().to_string()).or_insert(0) += 1;
        }
        for w in &workers {
            let n = count[w];
            assert!((800..1200).contains(&n), "{w} owns {n} of 3000");
        }
    }

    #[test]
    fn a_leaving_worker_moves_only_its_rooms() {
        let all: Vec<String> = ["w1", "w2", "w3"].map(String::from).to_vec();
        let rest: Vec<String> = ["w1", "w3"].map(String::from).to_vec();
        for r in rooms(500) {
            let before = owner(&r, &all).unwrap();
            let after = owner(&r, &rest).unwrap();
            if before != "w2" {
                assert_eq!(before, after);
            }
        }
        assert_eq!(owner(&RoomId::parse("x").unwrap(), &[]), None);
    }
}
