//! Who gets a socket, and for how long before it has said anything: the
//! gateway's first line against floods.
//!
//! - **Connections per address.** Each peer IP (an IPv6 peer: its /64)
//!   may hold at most `per_ip` TCP connections at once (HTTP and WebSockets alike); one more
//!   is answered `429 Too Many Requests` and closed before any of it is
//!   read. Loopback peers are not counted: local tools, load tests and a
//!   proxy on the same host. Behind a proxy on another host (an Ingress),
//!   every peer is the proxy: turn the cap off (0) and cap at the proxy.
//! - **A request in time.** A connection must send a whole request, to
//!   which the gateway answers, within `request_timeout`: a half-open
//!   upgrade or a request dribbled a byte at a time (slowloris) is closed
//!   then, instead of holding its socket for ever. The clock stops at the
//!   gateway's first byte of answer; from then on a WebSocket's own idle
//!   rules hold (see `connection.rs`). A plain HTTP connection serves that
//!   one request and closes (`routes.rs` answers `Connection: close`), so
//!   no second request can be dribbled or left pending on it.
//!
//! The listener also sets each socket's options (no Nagle delay, a bounded
//! send buffer).

use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::serve::Listener;
use prometheus::IntCounter;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::{Instant, Sleep, sleep_until};
use tracing::{debug, warn};

/// Limits on accepted connections.
#[derive(Clone, Copy, Debug)]
pub struct AdmissionConfig {
    /// Connections one non-loopback IP may hold at once (0: no cap).
    pub per_ip: usize,
    /// Time from accept to the gateway's first byte of answer.
    pub request_timeout: Duration,
    /// Kernel send buffer of each socket (SO_SNDBUF).
    pub tcp_send_buffer: usize,
    /// Loopback peers go uncounted (the gateway's own choice; tests of the
    /// cap, on loopback, count them).
    pub exempt_loopback: bool,
}

/// The answer to a connection over its address's cap, written at once.
const TOO_MANY: &[u8] = b"HTTP/1.1 429 Too Many Requests\r\nContent-Type: text/plain\r\nContent-Length: 40\r\n\
Connection: close\r\n\r\ntoo many connections from your address\r\n";

/// Open connections per IP.
#[derive(Default)]
struct Counts(Mutex<HashMap<IpAddr, usize>>);

impl Counts {
    fn lock(&self) -> MutexGuard<'_, HashMap<IpAddr, usize>> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The address a peer is counted under: an IPv4 address (also when it
/// comes mapped into IPv6), or an IPv6 address's /64, which one customer
/// usually holds whole (so counting each address would count nothing).
fn address_key(ip: IpAddr) -> IpAddr {
    match ip.to_canonical() {
        IpAddr::V6(v6) if !v6.is_loopback() => IpAddr::V6((u128::from(v6) & !u128::from(u64::MAX)).into()),
        other => other,
    }
}

/// One counted connection of an IP; gives its place back when dropped.
struct Slot {
    counts: Arc<Counts>,
    ip: IpAddr,
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut counts = self.counts.lock();
        if let Some(n) = counts.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                counts.remove(&self.ip);
            }
        }
    }
}

/// A TCP listener that admits connections by [`AdmissionConfig`].
pub struct AdmittingListener {
    inner: TcpListener,
    config: AdmissionConfig,
    counts: Arc<Counts>,
    refused: IntCounter,
}

impl AdmittingListener {
    /// Admits from `inner`; `refused` counts the connections turned away
    /// for their address's cap.
    pub fn new(inner: TcpListener, config: AdmissionConfig, refused: IntCounter) -> Self {
        Self { inner, config, counts: Arc::default(), refused }
    }

    /// A place for `ip`, unless it is at its cap.
    fn admit(&self, ip: IpAddr) -> Result<Option<Slot>, ()> {
        let ip = address_key(ip);
        if self.config.per_ip == 0 || (self.config.exempt_loopback && ip.is_loopback()) {
            return Ok(None);
        }
        let mut counts = self.counts.lock();
        let n = counts.entry(ip).or_insert(0);
        if *n >= self.config.per_ip {
            return Err(());
        }
        *n += 1;
        Ok(Some(Slot { counts: self.counts.clone(), ip }))
    }

    fn tune(&self, tcp: &TcpStream) {
        // Game frames are small and latency matters: no Nagle delay. The
        // send buffer is bounded so a slow reader cannot hold megabytes of
        // kernel memory before its queue fills and it is cut off.
        if let Err(e) = tcp.set_nodelay(true) {
            warn!(error = %e, "cannot set TCP_NODELAY");
        }
        if let Err(e) = socket2::SockRef::from(tcp).set_send_buffer_size(self.config.tcp_send_buffer) {
            warn!(error = %e, "cannot set SO_SNDBUF");
        }
    }
}

impl Listener for AdmittingListener {
    type Io = AdmittedStream;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (AdmittedStream, SocketAddr) {
        loop {
            // Accept errors are logged and retried by axum's own listener.
            let (tcp, addr) = Listener::accept(&mut self.inner).await;
            match self.admit(addr.ip()) {
                Ok(slot) => {
                    self.tune(&tcp);
                    let deadline = Some(Box::pin(sleep_until(Instant::now() + self.config.request_timeout)));
                    return (AdmittedStream { tcp, _slot: slot, deadline }, addr);
                }
                Err(()) => {
                    self.refused.inc();
                    debug!(%addr, "over the connections per address");
                    // Best effort, never waiting: the socket is fresh, so
                    // its send buffer has room.
                    let _ = tcp.try_write(TOO_MANY);
                }
            }
        }
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        self.inner.local_addr()
    }
}

/// An admitted connection: its address's place, and the deadline for its
/// first request until the gateway answers.
pub struct AdmittedStream {
    tcp: TcpStream,
    _slot: Option<Slot>,
    deadline: Option<Pin<Box<Sleep>>>,
}

impl AsyncRead for AdmittedStream {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        if let Some(deadline) = self.deadline.as_mut()
            && deadline.as_mut().poll(cx).is_ready()
        {
            return Poll::Ready(Err(io::Error::new(io::ErrorKind::TimedOut, "no request in time")));
        }
        Pin::new(&mut self.tcp).poll_read(cx, buf)
    }
}

impl AsyncWrite for AdmittedStream {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        // The request is in: the gateway is answering it.
        self.deadline = None;
        Pin::new(&mut self.tcp).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        self.deadline = None;
        Pin::new(&mut self.tcp).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.tcp.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.tcp).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.tcp).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;
    use crate::GatewayConfig;

    /// The gateway's default limits.
    fn admission() -> AdmissionConfig {
        GatewayConfig::default().admission()
    }

    async fn serve(config: AdmissionConfig) -> (SocketAddr, IntCounter) {
        let inner = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = inner.local_addr().unwrap();
        let refused = IntCounter::new("refused", "refused").unwrap();
        let listener = AdmittingListener::new(inner, config, refused.clone());
        let app = axum::Router::new().route("/", axum::routing::get(|| async { "hi" }));
        tokio::spawn(async move { axum::serve(listener, app).await });
        (addr, refused)
    }

    /// What the server sends before it closes (within 5 s).
    async fn answer(s: &mut TcpStream) -> String {
        let mut buf = Vec::new();
        let _ = tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut buf)).await;
        String::from_utf8_lossy(&buf).into_owned()
    }

    #[tokio::test]
    async fn an_address_over_its_cap_is_told_429_and_a_place_comes_back_when_one_closes() {
        let config = AdmissionConfig { per_ip: 2, exempt_loopback: false, ..admission() };
        let (addr, refused) = serve(config).await;
        let mut a = TcpStream::connect(addr).await.unwrap();
        let b = TcpStream::connect(addr).await.unwrap();
        let mut c = TcpStream::connect(addr).await.unwrap();
        assert!(answer(&mut c).await.starts_with("HTTP/1.1 429"), "the third is refused");
        assert_eq!(refused.get(), 1);
        // The first two are served.
        a.write_all(b"GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n").await.unwrap();
        assert!(answer(&mut a).await.ends_with("hi"));
        drop(b);
        // Both places are free again once the server has seen them close.
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let mut d = TcpStream::connect(addr).await.unwrap();
            d.write_all(b"GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n").await.unwrap();
            if answer(&mut d).await.ends_with("hi") {
                break;
            }
            assert!(Instant::now() < deadline, "no place came back");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    #[test]
    fn ipv6_peers_are_counted_by_their_64_and_mapped_ipv4_as_ipv4() {
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        assert_eq!(address_key(ip("2001:db8:1:2:aaaa::1")), address_key(ip("2001:db8:1:2:bbbb::9")));
        assert_ne!(address_key(ip("2001:db8:1:2::1")), address_key(ip("2001:db8:1:3::1")));
        assert_eq!(address_key(ip("::ffff:192.0.2.2")), ip("192.0.2.2"));
        assert_eq!(address_key(ip("::1")), ip("::1"));
        assert_eq!(address_key(ip("::ffff:127.0.0.1")), ip("127.0.0.1"));
    }

    #[tokio::test]
    async fn loopback_is_not_counted_unless_asked_and_no_cap_means_none() {
        for config in [
            AdmissionConfig { per_ip: 1, ..admission() },
            AdmissionConfig { per_ip: 0, exempt_loopback: false, ..admission() },
        ] {
            let (addr, refused) = serve(config).await;
            let _held: Vec<TcpStream> = futures_util::future::join_all((0..5).map(|_| TcpStream::connect(addr)))
                .await
                .into_iter()
                .map(Result::unwrap)
                .collect();
            let mut s = TcpStream::connect(addr).await.unwrap();
            s.write_all(b"GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n").await.unwrap();
            assert!(answer(&mut s).await.ends_with("hi"), "{config:?}");
            assert_eq!(refused.get(), 0);
        }
    }

    #[tokio::test]
    async fn a_request_not_sent_in_time_is_closed_unanswered_and_a_served_one_is_not() {
        let config = AdmissionConfig { request_timeout: Duration::from_millis(300), ..admission() };
        let (addr, _) = serve(config).await;
        // Half a request, then nothing (a half-open upgrade, slowloris).
        let mut half = TcpStream::connect(addr).await.unwrap();
        half.write_all(b"GET /connect HTTP/1.1\r\nHost: t\r\n").await.unwrap();
        let started = Instant::now();
        assert_eq!(answer(&mut half).await, "", "closed without an answer");
        let took = started.elapsed();
        assert!(took >= Duration::from_millis(250) && took < Duration::from_secs(3), "closed after {took:?}");
        // A keep-alive connection answered in time outlives the deadline.
        let mut kept = TcpStream::connect(addr).await.unwrap();
        kept.write_all(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n").await.unwrap();
        let mut buf = [0u8; 512];
        assert!(kept.read(&mut buf).await.unwrap() > 0);
        tokio::time::sleep(Duration::from_millis(600)).await;
        kept.write_all(b"GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n").await.unwrap();
        assert!(answer(&mut kept).await.ends_with("hi"), "the second request on it is served");
    }
}
