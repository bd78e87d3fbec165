//! The gateways this worker's rooms have members on, and those found gone.
//!
//! A gateway that dies without a word (SIGKILL, a lost node) cannot tell
//! its rooms that its players' connections ended. Until the presence
//! timeout the rooms would go on stepping those players' snakes with nobody
//! watching, and by the time the players resume on another gateway many of
//! the snakes have run into something. So gateways are judged the way
//! workers are: each stays subscribed to a presence channel of its own, the
//! host polls the presence of the gateways its rooms use together with the
//! workers', and one absent twice in a row is gone. Every room then parks
//! the snakes of that gateway's members at once (their grace period
//! starts), so a resume finds each snake a step or two from where its
//! player last saw it, the same length and score.
//!
//! Rooms tell which gateways they use (counted, so that the host polls only
//! those); the host tells the rooms which are gone.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

use tokio::sync::watch;

/// Shared by the host and its rooms; cheap to clone.
#[derive(Clone)]
pub struct Gateways {
    inner: Arc<Inner>,
}

struct Inner {
    /// Gateway id -> rooms with members on it.
    used: Mutex<HashMap<String, usize>>,
    gone: watch::Sender<Arc<HashSet<String>>>,
}

impl Default for Gateways {
    fn default() -> Self {
        let (gone, _) = watch::channel(Arc::default());
        Self { inner: Arc::new(Inner { used: Mutex::default(), gone }) }
    }
}

impl Gateways {
    /// A room's members were on the gateways `old` and are now on `new`.
    pub fn moved(&self, old: &HashSet<String>, new: &HashSet<String>) {
        let mut used = self.inner.used.lock().unwrap_or_else(|e| e.into_inner());
        for g in new.difference(old) {
            *used.entry(g.clone()).or_default() += 1;
        }
        for g in old.difference(new) {
            if let Some(n) = used.get_mut(g) {
                *n -= 1;
                if *n == 0 {
                    used.remove(g);
                }
            }
        }
    }

    /// The gateways some room has members on.
    pub fn in_use(&self) -> Vec<String> {
        self.inner.used.lock().unwrap_or_else(|e| e.into_inner()).keys().cloned().collect()
    }

    /// The host's verdict: these gateways are gone.
    pub fn set_gone(&self, gone: HashSet<String>) {
        self.inner.gone.send_if_modified(|now| {
            let changed = **now != gone;
            if changed {
                *now = Arc::new(gone);
            }
            changed
        });
    }

    /// For a room: the gateways found gone, as they change.
    pub fn watch_gone(&self) -> watch::Receiver<Arc<HashSet<String>>> {
        self.inner.gone.subscribe()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(ids: &[&str]) -> HashSet<String> {
        ids.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn gateways_are_counted_by_the_rooms_that_use_them() {
        let g = Gateways::default();
        g.moved(&set(&[]), &set(&["a", "b"]));
        g.moved(&set(&[]), &set(&["b"]));
        let mut used = g.in_use();
        used.sort();
        assert_eq!(used, ["a", "b"]);
        g.moved(&set(&["a", "b"]), &set(&["c"]));
        let mut used = g.in_use();
        used.sort();
        assert_eq!(used, ["b", "c"], "b is still used by the second room");
        g.moved(&set(&["b"]), &set(&[]));
        g.moved(&set(&["c"]), &set(&[]));
        assert!(g.in_use().is_empty());
    }

    #[test]
    fn rooms_hear_of_a_gone_gateway_once() {
        let g = Gateways::default();
        let mut rx = g.watch_gone();
        g.set_gone(set(&["a"]));
        assert!(rx.has_changed().unwrap());
        assert_eq!(**rx.borrow_and_update(), set(&["a"]));
        g.set_gone(set(&["a"]));
        assert!(!rx.has_changed().unwrap(), "the same verdict again is no news");
    }
}
