//! Text frames written straight to the socket, past tungstenite's buffer.
//!
//! tungstenite copies each message it sends into a write buffer, and that
//! buffer keeps its largest size for the connection's life: a 10 KiB
//! `world` once cost every connection 10 KiB, and cut into fragments, one
//! fragment's worth (2 KiB) plus a write per fragment. A server's frame
//! needs no mask, so its header (tungstenite's own [`FrameHeader`]) and
//! the frame's shared bytes go out in one write, and no connection keeps a
//! buffer: a frame up to [`GATHER_MAX`] is copied with its header into a
//! buffer of the runtime thread's and sent with one plain `send` (cheaper
//! in the kernel than a vectored write); a longer one, or the rest of a
//! frame the socket did not take whole, goes out as a vectored write of
//! header and body.
//!
//! tungstenite still reads, and writes what it writes itself (pongs, the
//! close frame). The two never interleave within a frame:
//! - before a frame goes out, tungstenite's own buffer is flushed (see
//!   `connection.rs`);
//! - a frame the socket did not take whole keeps its rest in [`Unsent`]
//!   (written on when the socket has room, or when the connection ends),
//!   and nothing else is written on the socket before it.

use std::cell::RefCell;
use std::io::IoSlice;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use bytes::{Buf, Bytes};
use tokio::io::AsyncWrite;
use tokio_tungstenite::tungstenite::protocol::frame::FrameHeader;
use tokio_tungstenite::tungstenite::protocol::frame::coding::{Data, OpCode};

use crate::upgrade::Socket;

/// The longest header of an unmasked frame: 2 bytes and a 64-bit length.
const MAX_HEAD: usize = 10;

/// The longest frame gathered for a plain `send`; longer ones go out as
/// a vectored write (their copy would cost more than the kernel saves).
pub const GATHER_MAX: usize = 16 * 1024;

thread_local! {
    /// A frame gathered for one plain `send`: a vectored write (`writev`)
    /// of header and body costs the kernel more than this copy. One per
    /// runtime thread, at most [`GATHER_MAX`].
    static GATHER: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

/// A frame on its way out: header, then body, from `at` on.
pub struct Unsent {
    head: [u8; MAX_HEAD],
    head_len: u8,
    body: Bytes,
    at: usize,
}

impl Unsent {
    /// One whole text frame of `text` (valid UTF-8, as the caller's
    /// `Utf8Bytes` guarantees).
    pub fn text(text: Bytes) -> Self {
        let mut head = [0u8; MAX_HEAD];
        let header = FrameHeader { is_final: true, opcode: OpCode::Data(Data::Text), ..FrameHeader::default() };
        let mut out = &mut head[..];
        let before = out.len();
        // Writing into a 10-byte slice: the longest header fits.
        let _ = header.format(text.len() as u64, &mut out);
        let head_len = (before - out.len()) as u8;
        Self { head, head_len, body: text, at: 0 }
    }

    fn head(&self) -> &[u8] {
        &self.head[..usize::from(self.head_len)]
    }
}

impl Buf for Unsent {
    fn remaining(&self) -> usize {
        usize::from(self.head_len) + self.body.len() - self.at
    }

    fn chunk(&self) -> &[u8] {
        let head = usize::from(self.head_len);
        if self.at < head { &self.head()[self.at..] } else { &self.body[self.at - head..] }
    }

    fn advance(&mut self, n: usize) {
        self.at = (self.at + n).min(usize::from(self.head_len) + self.body.len());
    }

    fn chunks_vectored<'a>(&'a self, dst: &mut [IoSlice<'a>]) -> usize {
        let head = usize::from(self.head_len);
        let mut n = 0;
        if self.at < head && n < dst.len() {
            dst[n] = IoSlice::new(&self.head()[self.at..]);
            n += 1;
        }
        let body = &self.body[self.at.saturating_sub(head)..];
        if !body.is_empty() && n < dst.len() {
            dst[n] = IoSlice::new(body);
            n += 1;
        }
        n
    }
}

/// Writes what `unsent` holds as far as the socket takes it: ready once it
/// is all out (`unsent` is then `None`); pending with the rest kept.
pub fn poll_finish(cx: &mut Context<'_>, ws: &mut Socket, unsent: &mut Option<Unsent>) -> Poll<std::io::Result<()>> {
    while let Some(frame) = unsent {
        if !frame.has_remaining() {
            *unsent = None;
            break;
        }
        let mut slices = [IoSlice::new(&[]); 2];
        let n = frame.chunks_vectored(&mut slices);
        let wrote = ready!(Pin::new(ws.get_mut()).poll_write_vectored(cx, &slices[..n]))?;
        if wrote == 0 {
            return Poll::Ready(Err(std::io::ErrorKind::WriteZero.into()));
        }
        frame.advance(wrote);
    }
    Poll::Ready(Ok(()))
}

/// Writes `text` as one text frame as far as the socket takes it: ready
/// once it is all out; pending with the rest kept in `unsent`, which must
/// be empty.
pub fn poll_write_text(
    cx: &mut Context<'_>,
    ws: &mut Socket,
    unsent: &mut Option<Unsent>,
    text: Bytes,
) -> Poll<std::io::Result<()>> {
    let mut frame = Unsent::text(text);
    if frame.remaining() > GATHER_MAX {
        *unsent = Some(frame);
        return poll_finish(cx, ws, unsent);
    }
    let sent = GATHER.with_borrow_mut(|buf| {
        buf.clear();
        buf.extend_from_slice(frame.head());
        buf.extend_from_slice(&frame.body);
        Pin::new(ws.get_mut()).poll_write(cx, buf)
    });
    match sent {
        Poll::Ready(Ok(0)) => return Poll::Ready(Err(std::io::ErrorKind::WriteZero.into())),
        Poll::Ready(Ok(n)) => frame.advance(n),
        Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
        Poll::Pending => {}
    }
    if !frame.has_remaining() {
        return Poll::Ready(Ok(()));
    }
    *unsent = Some(frame);
    poll_finish(cx, ws, unsent)
}

/// Sends the rest of a frame, if any. Cancel-safe: cut short, what is
/// left stays in `unsent`.
pub async fn finish(ws: &mut Socket, unsent: &mut Option<Unsent>) -> std::io::Result<()> {
    std::future::poll_fn(|cx| poll_finish(cx, ws, unsent)).await
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use tokio_tungstenite::tungstenite::protocol::frame::Frame;

    use super::*;

    fn drain(mut frame: Unsent, step: usize) -> Vec<u8> {
        let mut out = Vec::new();
        while frame.has_remaining() {
            // What a vectored write of `step` bytes at most would take.
            let mut slices = [IoSlice::new(&[]); 4];
            let n = frame.chunks_vectored(&mut slices);
            let mut took = 0;
            for slice in &slices[..n] {
                let take = (step - took).min(slice.len());
                out.extend_from_slice(&slice[..take]);
                took += take;
            }
            frame.advance(took);
        }
        out
    }

    /// The bytes are tungstenite's own encoding of the same frame, for each
    /// length format, however the writes cut them.
    #[test]
    fn the_same_bytes_as_tungstenite_however_cut() {
        for len in [0, 1, 125, 126, 1_000, 65_535, 65_536, 70_001] {
            let text = Bytes::from("é".repeat(len / 2) + &"x".repeat(len % 2));
            let mut expected = Vec::new();
            Frame::message(text.clone(), OpCode::Data(Data::Text), true).format(&mut expected).unwrap();
            for step in [1, 3, 7, 11, 4096, usize::MAX] {
                assert_eq!(drain(Unsent::text(text.clone()), step), expected, "len {len} step {step}");
            }
        }
    }
}
