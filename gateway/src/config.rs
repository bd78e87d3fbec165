//! The gateway's settings (filled from flags and `SNAKEPIT_*` variables by
//! `main`, from literals by tests).

use std::time::Duration;

use crate::admission::AdmissionConfig;

#[derive(Clone, Debug)]
pub struct GatewayConfig {
    /// Seats of a room created by this gateway (the game's max players).
    pub room_capacity: u16,
    /// Frames queued for one connection before it counts as too slow.
    pub send_queue: usize,
    /// Client messages per second, and the burst allowed above it.
    pub rate_per_sec: f64,
    pub rate_burst: f64,
    /// Messages dropped by the rate limit before the connection is closed.
    pub flood_limit: u32,
    /// How long a session (resume token) lives after its connection ends.
    pub session_ttl: Duration,
    /// Time for one write to a client before it counts as dead.
    pub write_timeout: Duration,
    /// Kernel send buffer of each client socket (SO_SNDBUF). Bounds the
    /// kernel memory a slow reader can hold, and so how soon it is noticed;
    /// frames are small, so 256 KiB is plenty for a client that keeps up.
    pub tcp_send_buffer: usize,
    /// How often the gateway tells each room which of its members it holds.
    pub presence_every: Duration,
    /// How long a seat taken for a player is held before its room confirms
    /// it (the room's own hold takes over once the player is in).
    pub seat_hold: Duration,
    /// How often `enter` is repeated until the room answers, and for how long.
    pub enter_retry: Duration,
    pub enter_timeout: Duration,
    /// How often each client is pinged, and how long a client may send
    /// nothing at all (no message, no pong) before it counts as dead and is
    /// closed: a half-open connection must not hold its seat forever.
    pub ping_every: Duration,
    pub idle_timeout: Duration,
    /// A WebSocket must send its first message within this: one opened and
    /// left silent holds a socket for nothing.
    pub first_message_timeout: Duration,
    /// TCP connections one (non-loopback) IP may hold at once; 0: no cap.
    pub connections_per_ip: usize,
    /// Time from accept to the gateway's answer to the first request.
    pub request_timeout: Duration,
    /// Pages (`Origin`s, e.g. `https://snake.example.com`, as
    /// `routes::normalize_origin` spells them) whose scripts may open a
    /// WebSocket; empty: any. A request with no `Origin` is not
    /// from a browser's page and is let in.
    pub allowed_origins: Vec<String>,
}

impl Default for GatewayConfig {
    fn default() -> Self {
        Self {
            room_capacity: 10,
            send_queue: 64,
            rate_per_sec: 30.0,
            rate_burst: 60.0,
            flood_limit: 200,
            session_ttl: Duration::from_secs(600),
            write_timeout: Duration::from_secs(5),
            tcp_send_buffer: 256 * 1024,
            presence_every: Duration::from_secs(5),
            seat_hold: Duration::from_secs(30),
            enter_retry: Duration::from_millis(100),
            enter_timeout: Duration::from_secs(10),
            ping_every: Duration::from_secs(15),
            idle_timeout: Duration::from_secs(45),
            first_message_timeout: Duration::from_secs(10),
            connections_per_ip: 64,
            request_timeout: Duration::from_secs(10),
            allowed_origins: Vec::new(),
        }
    }
}

impl GatewayConfig {
    /// The limits the listener admits connections by.
    pub fn admission(&self) -> AdmissionConfig {
        AdmissionConfig {
            per_ip: self.connections_per_ip,
            request_timeout: self.request_timeout,
            tcp_send_buffer: self.tcp_send_buffer,
            exempt_loopback: true,
        }
    }
}
