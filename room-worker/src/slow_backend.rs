//! A backend for host tests that behaves like a slow Redis: every call
//! sleeps for a fixed latency (on tokio's clock, so paused-time tests run
//! fast) and is then forwarded to a real backend. It also counts lease
//! acquisitions and records what every renewal found.

#![allow(clippy::unwrap_used)]

use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use snakepit_bus::intercept::{Call, Hook, Intercepted};
use snakepit_bus::{BusError, Lease, LeaseState, RoomId};

pub type SlowBackend<B> = Intercepted<B, Slow>;

/// A real backend behind `latency` per call.
pub fn slow<B>(inner: B, latency: Duration) -> SlowBackend<B> {
    Intercepted::new(inner, Slow { latency, log: Arc::default() })
}

#[derive(Clone)]
pub struct Slow {
    latency: Duration,
    log: Arc<Mutex<Log>>,
}

#[derive(Default)]
pub struct Log {
    /// Every `acquire_lease`, by room.
    pub acquired: Vec<RoomId>,
    /// Reads of the whole room directory.
    pub listed: usize,
    /// Leases a renewal found held, and the others (room and state).
    pub renewed_held: usize,
    pub renewed_not_held: Vec<(RoomId, LeaseState)>,
}

impl Slow {
    pub fn log(&self) -> std::sync::MutexGuard<'_, Log> {
        self.log.lock().unwrap()
    }
}

impl Hook for Slow {
    fn before(&self, call: Call<'_>) -> impl Future<Output = Result<(), BusError>> + Send {
        match call {
            Call::AcquireLease(room) => self.log().acquired.push(room.clone()),
            Call::ListRooms => self.log().listed += 1,
            _ => {}
        }
        let latency = self.latency;
        async move {
            tokio::time::sleep(latency).await;
            Ok(())
        }
    }

    fn renewed(&self, leases: &[Lease], states: &[LeaseState]) {
        let mut log = self.log();
        for (lease, state) in leases.iter().zip(states) {
            match state {
                LeaseState::Held => log.renewed_held += 1,
                other => log.renewed_not_held.push((lease.room.clone(), *other)),
            }
        }
    }
}
