//! Binding a TCP listener with a chosen accept backlog.
//!
//! The standard library listens with a backlog of 128. When a gateway dies
//! its clients all reconnect to the others at once; a burst of a few hundred
//! connects overflowed that queue, and each dropped SYN cost its client a
//! one-second retransmission. The kernel caps the backlog at
//! `net.core.somaxconn` (4096 on current kernels).

use std::io;
use std::net::SocketAddr;

use tokio::net::{TcpListener, TcpSocket};

/// The gateway's default: a reconnect storm of thousands fits.
pub const DEFAULT_BACKLOG: u32 = 4096;

/// Binds `addr` and listens with `backlog` pending connections (address
/// reuse on, as the standard library does). Needs a Tokio runtime.
pub fn bind(addr: SocketAddr, backlog: u32) -> io::Result<TcpListener> {
    let socket = if addr.is_ipv4() { TcpSocket::new_v4()? } else { TcpSocket::new_v6()? };
    #[cfg(not(windows))] // as std: on Windows SO_REUSEADDR lets a second process bind the same port
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(backlog)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn binds_a_free_port_and_accepts() {
        let listener = bind("127.0.0.1:0".parse().unwrap(), 16).unwrap();
        let addr = listener.local_addr().unwrap();
        let client = tokio::spawn(async move { tokio::net::TcpStream::connect(addr).await.is_ok() });
        let (_stream, _) = listener.accept().await.unwrap();
        assert!(client.await.unwrap());
    }
}
