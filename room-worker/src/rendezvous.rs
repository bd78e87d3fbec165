//! Rendezvous (highest random weight) hashing: which live worker should own
//! a room. Every worker computes the same answer from the same list, and a
//! worker joining or leaving moves only the rooms it wins or held.

use std::hash::{DefaultHasher, Hash, Hasher};

use snakepit_shared::RoomId;

/// The worker with the highest weight for `room`, if any.
pub fn owner<'a>(room: &RoomId, workers: &'a [String]) -> Option<&'a str> {
    workers.iter().max_by_key(|w| weight(room, w)).map(String::as_str)
}

fn weight(room: &RoomId, worker: &str) -> u64 {
    let mut h = DefaultHasher::new();
    room.as_str().hash(&mut h);
    worker.hash(&mut h);
    h.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rooms(n: usize) -> Vec<RoomId> {
        (0..n).map(|i| RoomId::parse(&format!("r{i}")).unwrap()).collect()
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
