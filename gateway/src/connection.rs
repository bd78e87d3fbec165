//! One client connection: one task that owns the whole socket (read and
//! write, no split lock), the connection's bounded outgoing queue, its
//! timers (pings, the idle and first-message deadlines, the room's answer)
//! and the signals others raise (too slow, superseded, restart).
//!
//! Anything that waits on the backend is the session's (`session.rs`): a
//! job at a time, polled in this same task beside the socket, so the
//! outgoing queue keeps draining while a job waits on Redis. The loop
//! itself never awaits anything but the client's socket.
//!
//! The connection never runs game rules; the session owns the player's
//! identity and tags every input with it: a client can only steer its own
//! snake.

use std::collections::VecDeque;
use std::future::{Future, poll_fn};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use futures_util::{Sink, SinkExt, StreamExt};
use snakepit_bus::{Backend, ConnId};
use snakepit_protocol::client::ClientMessage;
use snakepit_protocol::frame_writer::{FrameWriter, error_frame};
use tokio::sync::watch;
use tokio::time::{Instant, sleep_until, timeout};
use tokio_tungstenite::tungstenite::protocol::frame::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::{Message, Utf8Bytes};
use tracing::debug;

use crate::direct_write::{self, Unsent};
use crate::fanout::{Outgoing, queue_own};
use crate::rate_limit::TokenBucket;
use crate::session::{Job, Session};
use crate::signals::{Signals, Stop};
use crate::state::AppState;
use crate::upgrade::Socket;
use snakepit_bus::queue as outbox;

/// How long a restart waits for the room's word that it parked the player's
/// snake (and for a write in flight) before it closes the client: a few
/// ticks, with room for a loaded worker or Redis.
const PARK_WAIT: Duration = Duration::from_millis(1000);

/// Client commands waiting for the session; one more gets "Server busy".
/// Above the rate limit's default burst (60): a client within the limit
/// hears it only when the backend has fallen that far behind.
const JOBS_QUEUED: usize = 64;

/// Key presses waiting for the session: a newer one replaces the oldest
/// (the room's own turn queue holds two), and keys never count against
/// [`JOBS_QUEUED`]'s bound beyond these.
const KEYS_QUEUED: usize = 2;

/// Frames written per wake-up, at most.
const BATCH: usize = 32;

// Close codes (see docs/protocol.md).

/// The gateway is restarting (drained): reconnect after a random delay and
/// resume.
pub const CLOSE_RESTART: u16 = 1012;
pub const CLOSE_POLICY: u16 = 1008;
pub const CLOSE_TOO_BIG: u16 = 1009;
pub const CLOSE_TOO_SLOW: u16 = 4008;
/// A newer connection of the same player (a resume) took over.
pub const CLOSE_SUPERSEDED: u16 = 4009;
/// Nothing (no message, no pong) from the client for the idle timeout.
pub const CLOSE_IDLE: u16 = 4000;
/// A client's close frame without a code counts as a normal close (1000):
/// an orderly close, and what many clients send by default.
const CLOSE_NORMAL: u16 = 1000;
/// Gone without a close frame (never sent; only counted).
const CLOSE_ABNORMAL: u16 = 1006;

/// How a write to the client ended.
enum Wrote {
    Done,
    /// A signal (kick, supersede, restart) came while the write waited.
    Stopped(Stop),
    /// The client is gone, or did not take the data in time.
    Failed,
}

enum Flow {
    Continue,
    /// The client closed, with this code.
    ClientClosed(u16),
    Close(u16, &'static str),
}

/// How a connection ended; counted by its close code.
enum Ending {
    /// The gateway closes with this code and reason.
    Close(u16, &'static str),
    /// The client sent a close frame with this code.
    ClientClosed(u16),
    /// Gone without a close frame: the socket broke, or a write failed.
    Lost,
}

impl Ending {
    fn code(&self) -> u16 {
        match self {
            Self::Close(code, _) | Self::ClientClosed(code) => *code,
            Self::Lost => CLOSE_ABNORMAL,
        }
    }
}

impl From<Stop> for Ending {
    /// A superseded client must not resume: it would shut out the newer
    /// connection in turn.
    fn from(stop: Stop) -> Self {
        match stop {
            Stop::Superseded => Self::Close(CLOSE_SUPERSEDED, "resumed elsewhere"),
            Stop::Restart => Self::Close(CLOSE_RESTART, "gateway restarting; reconnect and resume"),
            Stop::TooSlow => Self::Close(CLOSE_TOO_SLOW, "too slow; reconnect and resume"),
        }
    }
}

/// The handshake's end, boxed: it would otherwise take room in the task for
/// the connection's whole life.
pub type Upgrade = Pin<Box<dyn Future<Output = Option<Socket>> + Send>>;

/// The session, waiting for a job or doing one.
enum Slot<B> {
    Idle(Box<Session<B>>),
    Busy(Pin<Box<dyn Future<Output = Box<Session<B>>> + Send>>),
}

/// What the queue tells the connection beside the frames it writes.
#[derive(Default)]
struct Marks {
    /// A welcome went out: the session stops repeating its `enter`.
    welcomed: bool,
    /// The fan-out asked for a fresh world.
    resync: bool,
    /// The room said it parked this connection's snake (a drain waits for it).
    parked: bool,
    /// When the oldest key press not yet followed by a tick frame came in.
    key_at: Option<Instant>,
    /// The rest of a frame cut short (see [`direct_write`]): it goes out
    /// before anything else.
    unsent: Option<Unsent>,
    /// tungstenite may hold bytes of its own not yet written (a pong to the
    /// client's ping): they go out before the next frame.
    owed: bool,
}

pub struct Connection<B> {
    state: Arc<AppState<B>>,
    conn: ConnId,
    signals: Arc<Signals>,
    out_tx: outbox::Sender<Outgoing>,
    out_rx: outbox::Receiver<Outgoing>,
    marks: Marks,
    /// Client commands for the session, oldest first.
    jobs: VecDeque<ClientMessage>,
    /// Jobs of the connection's own, run before the client's.
    retry_due: bool,
    save_due: bool,
    store_resets: watch::Receiver<u64>,
    limiter: TokenBucket,
    throttled: bool,
    dropped: u32,
    /// The client has sent a command of the protocol since it opened.
    spoken: bool,
}

impl<B: Backend> Connection<B> {
    pub fn new(state: Arc<AppState<B>>) -> Self {
        let (out_tx, out_rx) = outbox::channel(state.config.send_queue);
        let limiter = TokenBucket::new(state.config.rate_per_sec, state.config.rate_burst);
        Self {
            conn: ConnId::random(),
            signals: Arc::default(),
            out_tx,
            out_rx,
            marks: Marks::default(),
            jobs: VecDeque::new(),
            retry_due: false,
            save_due: false,
            store_resets: state.store_resets.subscribe(),
            limiter,
            throttled: false,
            dropped: 0,
            spoken: false,
            state,
        }
    }

    /// Serves the client once `upgrade` has its socket, until the
    /// connection ends. A plain `fn` around an
    /// `async move` block: an `async fn` would keep a second copy of its
    /// arguments (the socket and the connection, 700 bytes) in the task for
    /// the connection's whole life.
    #[allow(clippy::manual_async_fn, reason = "an async fn copies its arguments")]
    pub fn run(mut self, upgrade: Upgrade) -> impl Future<Output = ()> + Send {
        async move {
            let Some(mut ws) = upgrade.await else { return };
            // Once for the task's life: then a signal is one atomic load
            // per wake-up.
            poll_fn(|cx| {
                self.signals.register(cx);
                Poll::Ready(())
            })
            .await;
            let opened = Instant::now();
            self.state.metrics.connections.inc();
            self.state.clients.add(self.conn, self.signals.clone());
            let session = Session::new(self.state.clone(), self.conn, self.out_tx.clone(), self.signals.clone());
            let mut slot = Slot::Idle(Box::new(session));
            // Dead peers: pings go out every `ping_every`, and a client heard
            // from (any message, pongs included) for `idle_timeout` is closed.
            // One timer for every deadline; the silence deadline is moved on
            // lazily, when it is reached.
            let config = self.state.config.clone();
            let mut next_ping = opened + config.ping_every;
            let mut heard = opened;
            let mut silence_at = opened + config.idle_timeout;
            let first_by = opened + config.first_message_timeout;
            // A session lives `session_ttl` from its last save: one held longer
            // must not expire while its player plays on (a gateway that then
            // died could not be resumed from).
            let mut refresh_at = opened + config.session_ttl / 2;
            let timer = sleep_until(opened + config.ping_every);
            tokio::pin!(timer);
            let mut timer_at = opened + config.ping_every;
            let ending = loop {
                // The store lost its data: save the session again. Checked at
                // every wake (an atomic load): a player's connection wakes for
                // frames, an idle one at its pings.
                if self.store_resets.has_changed().unwrap_or(false) {
                    self.store_resets.borrow_and_update();
                    self.save_due = true;
                }
                slot = match slot {
                    Slot::Idle(mut session) => match self.next_job(&session) {
                        Some(job) => Slot::Busy(Box::pin(async move {
                            session.run(job).await;
                            session
                        })),
                        None => Slot::Idle(session),
                    },
                    busy => busy,
                };
                let retry_at = match &slot {
                    Slot::Idle(session) => session.retry_at(),
                    Slot::Busy(_) => None,
                };
                let mut deadline = next_ping.min(silence_at);
                if !self.spoken {
                    deadline = deadline.min(first_by);
                }
                if let Some(at) = retry_at {
                    deadline = deadline.min(at);
                }
                if deadline != timer_at {
                    timer.as_mut().reset(deadline);
                    timer_at = deadline;
                }
                let busy = matches!(slot, Slot::Busy(_));
                tokio::select! {
                    biased;
                    stop = poll_fn(|_| self.signals.poll_raised()) => break stop.into(),
                    Some(out) = self.out_rx.recv() => {
                        // As much as the socket takes now; only a socket
                        // that is full waits, in a future of its own (rare,
                        // and large: it is not kept in every task).
                        let metrics = &self.state.metrics;
                        let mut out = Some(out);
                        let now = poll_fn(|cx| match out.take() {
                            Some(out) => Poll::Ready(write_now(cx, &mut ws, &mut self.out_rx, &mut self.marks, out, metrics)),
                            None => Poll::Ready(Now::Done),
                        });
                        let wrote = match now.await {
                            Now::Done => Wrote::Done,
                            Now::Failed => Wrote::Failed,
                            Now::Blocked => Box::pin(self.write_rest(&mut ws)).await,
                        };
                        match wrote {
                            Wrote::Done => {}
                            // Kicked or shut down while waiting on the socket:
                            // the client still hears why.
                            Wrote::Stopped(stop) => break stop.into(),
                            Wrote::Failed => break Ending::Lost,
                        }
                    }
                    // Before the socket: a client that keeps sending must not
                    // starve its own session.
                    session = async {
                        match &mut slot {
                            Slot::Busy(job) => job.await,
                            Slot::Idle(_) => std::future::pending().await,
                        }
                    }, if busy => slot = Slot::Idle(session),
                    msg = ws.next() => match msg {
                        None => break Ending::Lost,
                        Some(Err(e)) if too_big(&e) => break Ending::Close(CLOSE_TOO_BIG, "message too big"),
                        Some(Err(_)) => break Ending::Lost,
                        Some(Ok(msg)) => {
                            heard = Instant::now();
                            match self.on_message(msg) {
                                Flow::Continue => {}
                                Flow::ClientClosed(code) => break Ending::ClientClosed(code),
                                Flow::Close(code, reason) => break Ending::Close(code, reason),
                            }
                        }
                    },
                    () = &mut timer => {
                        let now = Instant::now();
                        if !self.spoken && now >= first_by {
                            debug!("no first message in time");
                            break Ending::Close(CLOSE_IDLE, "no message in time");
                        }
                        if now >= silence_at {
                            silence_at = heard + config.idle_timeout;
                            if silence_at <= now {
                                debug!("client silent for the idle timeout");
                                break Ending::Close(CLOSE_IDLE, "no message or pong in time; reconnect and resume");
                            }
                        }
                        if retry_at.is_some_and(|at| now >= at) {
                            self.retry_due = true;
                        }
                        if now >= next_ping {
                            next_ping = now + config.ping_every;
                            match Box::pin(self.ping(&mut ws)).await {
                                Wrote::Done => {}
                                Wrote::Stopped(stop) => break stop.into(),
                                Wrote::Failed => break Ending::Lost,
                            }
                            // Checked at the pings' pace, which costs no timer
                            // of its own.
                            if now >= refresh_at {
                                refresh_at = now + config.session_ttl / 2;
                                self.save_due = true;
                            }
                        }
                    }
                }
            };
            let session = match slot {
                Slot::Idle(session) => session,
                Slot::Busy(job) => job.await,
            };
            // Boxed: what waits on the backend is large, and held in the task
            // for the connection's whole life if awaited here.
            let linger = Box::pin(self.finish(&mut ws, session, &ending)).await;
            self.state.clients.remove(self.conn);
            self.state.metrics.connections.dec();
            self.state.metrics.closed(ending.code(), opened.elapsed());
            if linger {
                // The client's answer to the close (RFC 6455, 7.1.1), read for
                // as long as a write may take: a socket closed with messages
                // unread is reset, and a reset throws away what the kernel
                // has not sent yet (a slow client's last frames and the
                // close). A client that answers at once is let go at once.
                let drain = async { while let Some(Ok(_)) = ws.next().await {} };
                let _ = Box::pin(timeout(self.state.config.write_timeout, drain)).await;
            }
        }
    }

    /// The end of a connection: the snake parked if the gateway restarts,
    /// the session saved and the room told, then the close frame.
    /// True if the close frame went out: the client's answer is awaited.
    async fn finish(&mut self, ws: &mut Socket, mut session: Box<Session<B>>, ending: &Ending) -> bool {
        // A restart parks the player's snake before the close, so that the
        // last frames the client saw show it where it will stand.
        let told = matches!(ending, Ending::Close(CLOSE_RESTART, _)) && self.park_before_close(ws, &session).await;
        session.end(told).await;
        // A frame cut short goes out whole before tungstenite writes again.
        let write_timeout = self.state.config.write_timeout;
        if !matches!(timeout(write_timeout, direct_write::finish(ws, &mut self.marks.unsent)).await, Ok(Ok(()))) {
            return false;
        }
        if let Ending::ClientClosed(_) = ending {
            // tungstenite queued the answer to the client's close frame.
            let _ = timeout(write_timeout, ws.flush()).await;
        }
        if let Ending::Close(code, reason) = *ending {
            // Behind whatever the socket still holds: a slow client needs
            // as long as any write to take it in.
            let frame = CloseFrame { code: CloseCode::from(code), reason: Utf8Bytes::from_static(reason) };
            return matches!(timeout(write_timeout, ws.send(Message::Close(Some(frame)))).await, Ok(Ok(())));
        }
        false
    }

    /// The session's next job: the connection's own first, then the
    /// client's commands in order.
    fn next_job(&mut self, session: &Session<B>) -> Option<Job> {
        if std::mem::take(&mut self.marks.welcomed) {
            return Some(Job::Welcomed);
        }
        if std::mem::take(&mut self.marks.resync) {
            return Some(Job::Resync);
        }
        if std::mem::take(&mut self.retry_due) && session.retry_at().is_some() {
            return Some(Job::RetryEnter);
        }
        if std::mem::take(&mut self.save_due) {
            return Some(Job::SaveAgain);
        }
        let job = self.jobs.pop_front().map(Job::Client);
        if self.jobs.is_empty() && self.jobs.capacity() > 0 {
            // Empty nearly always (a command at a time): kept, its slots
            // would cost every connection 200 bytes for its whole life.
            self.jobs = VecDeque::new();
        }
        job
    }

    /// Writes what [`write_now`] left (a socket that was full) and a batch
    /// of whatever else is queued; a kick or a newer connection stops the
    /// wait on the socket at once.
    async fn write_rest(&mut self, ws: &mut Socket) -> Wrote {
        let write_timeout = self.state.config.write_timeout;
        let metrics = &self.state.metrics;
        let batch = write_batch(ws, &mut self.out_rx, &mut self.marks, None, write_timeout, metrics);
        tokio::pin!(batch);
        let stop = tokio::select! {
            biased;
            ok = &mut batch => return if ok { Wrote::Done } else { Wrote::Failed },
            stop = poll_fn(|_| self.signals.poll_raised()) => stop,
        };
        // A restart lets the frames in flight reach the client (briefly):
        // dropped, they would hide a step of the snake the drain parks.
        if stop == Stop::Restart && !matches!(timeout(PARK_WAIT, batch).await, Ok(true)) {
            return Wrote::Failed;
        }
        Wrote::Stopped(stop)
    }

    /// Sends a ping (tungstenite answers the client's own pings).
    async fn ping(&mut self, ws: &mut Socket) -> Wrote {
        let write_timeout = self.state.config.write_timeout;
        tokio::select! {
            sent = timeout(write_timeout, ws.send(Message::Ping(bytes::Bytes::new()))) => match sent {
                Ok(Ok(())) => Wrote::Done,
                _ => Wrote::Failed,
            },
            stop = poll_fn(|_| self.signals.poll_raised()) => Wrote::Stopped(stop),
        }
    }

    fn on_message(&mut self, msg: Message) -> Flow {
        if let Message::Ping(_) = msg {
            // tungstenite queued the pong, and writes it on its own.
            self.marks.owed = true;
        }
        let (text, control) = match msg {
            Message::Text(t) => (Some(t), false),
            Message::Binary(_) => (None, false),
            // Control frames share the message budget: a ping flood is a
            // flood (tungstenite answers each ping with a pong).
            Message::Ping(_) | Message::Pong(_) | Message::Frame(_) => (None, true),
            Message::Close(frame) => return Flow::ClientClosed(frame.map_or(CLOSE_NORMAL, |f| u16::from(f.code))),
        };
        if !self.limiter.try_take() {
            self.dropped += 1;
            self.state.metrics.client_errors.with_label_values(&["rate"]).inc();
            if self.dropped > self.state.config.flood_limit {
                return Flow::Close(CLOSE_POLICY, "too many messages");
            }
            if !self.throttled && !control {
                self.throttled = true;
                self.send(error_frame("Too many messages"));
            }
            return Flow::Continue;
        }
        if control {
            return Flow::Continue;
        }
        self.throttled = false;
        let Some(text) = text else {
            self.state.metrics.client_errors.with_label_values(&["binary"]).inc();
            self.send(error_frame("Binary frames are not supported"));
            return Flow::Continue;
        };
        match ClientMessage::parse(&text) {
            Ok(msg) => {
                // Only a command of the protocol counts as speaking: a
                // binary frame or garbage does not keep a socket.
                self.spoken = true;
                match msg {
                    // Answered here: a ping measures the gateway, not Redis.
                    ClientMessage::Ping => {
                        let mut w = FrameWriter::default();
                        w.pong();
                        self.send(w.finish());
                    }
                    ClientMessage::Key(dir) => {
                        // A room takes one turn a tick from a queue of two:
                        // while the backend is slow, the two latest turns
                        // are the ones worth sending.
                        let is_key = |m: &ClientMessage| matches!(m, ClientMessage::Key(_));
                        if self.jobs.iter().filter(|m| is_key(m)).count() >= KEYS_QUEUED
                            && let Some(oldest) = self.jobs.iter().position(is_key)
                        {
                            self.jobs.remove(oldest);
                        }
                        self.marks.key_at.get_or_insert_with(Instant::now);
                        self.jobs.push_back(ClientMessage::Key(dir));
                    }
                    _ if self.jobs.len() >= JOBS_QUEUED => {
                        self.state.metrics.client_errors.with_label_values(&["busy"]).inc();
                        self.send(error_frame("Server busy, try again"));
                    }
                    msg => self.jobs.push_back(msg),
                }
            }
            Err(e) => {
                self.state.metrics.client_errors.with_label_values(&["protocol"]).inc();
                self.send(error_frame(&e.to_string()));
            }
        }
        Flow::Continue
    }

    /// Tells the room a player is going (`Disconnect`: its snake parks),
    /// then forwards the room's frames until the room says it parked the
    /// snake (`PARK_WAIT` at most) before the restart closes the client: a
    /// snake the room moved between the client's last frame and the
    /// `Disconnect` would stand elsewhere when the player resumes. False if
    /// nothing was told.
    async fn park_before_close(&mut self, ws: &mut Socket, session: &Session<B>) -> bool {
        if !session.tell_disconnect().await {
            return false;
        }
        let deadline = Instant::now() + PARK_WAIT;
        let write_timeout = self.state.config.write_timeout;
        while !self.marks.parked {
            let Ok(Some(out)) = tokio::time::timeout_at(deadline, self.out_rx.recv()).await else { break };
            let batch =
                write_batch(ws, &mut self.out_rx, &mut self.marks, Some(out), write_timeout, &self.state.metrics);
            if !matches!(tokio::time::timeout_at(deadline, batch).await, Ok(true)) {
                break;
            }
        }
        true
    }

    fn send(&self, frame: bytes::Bytes) {
        queue_own(&self.out_tx, frame, &self.state.metrics);
    }
}

/// What [`write_now`] got done.
enum Now {
    Done,
    /// The socket is full: the rest is for [`write_batch`].
    Blocked,
    Failed,
}

/// What goes to the client for `out`, noting what it tells the
/// connection; `None` for a marker.
fn text_of(out: Outgoing, marks: &mut Marks, metrics: &crate::metrics::GatewayMetrics) -> Option<bytes::Bytes> {
    match out {
        Outgoing::Frame(t) => Some(bytes::Bytes::from(Utf8Bytes::clone(&t))),
        Outgoing::Tick(t) => {
            if let Some(at) = marks.key_at.take() {
                metrics.input_to_broadcast.observe(at.elapsed().as_secs_f64());
            }
            Some(bytes::Bytes::from(Utf8Bytes::clone(&t)))
        }
        Outgoing::Welcome(t) => {
            marks.welcomed = true;
            Some(bytes::Bytes::from(Utf8Bytes::clone(&t)))
        }
        Outgoing::Resync => {
            marks.resync = true;
            None
        }
        Outgoing::Parked => {
            marks.parked = true;
            None
        }
        Outgoing::Moved => {
            marks.welcomed = false;
            None
        }
    }
}

/// Writes `first` and up to a batch of whatever else is queued, each
/// frame in one write past tungstenite (see [`direct_write`]), as far as
/// the socket takes them without waiting: a frame it did not take whole
/// stays in `marks.unsent`.
fn write_now(
    cx: &mut Context<'_>,
    ws: &mut Socket,
    rx: &mut outbox::Receiver<Outgoing>,
    marks: &mut Marks,
    first: Outgoing,
    metrics: &crate::metrics::GatewayMetrics,
) -> Now {
    let mut next = Some(first);
    let mut batch = 0;
    while let Some(out) = next.take() {
        if let Some(text) = text_of(out, marks, metrics) {
            // What tungstenite holds (a pong) goes first: frames never
            // interleave.
            if marks.owed {
                match <Socket as Sink<Message>>::poll_flush(Pin::new(&mut *ws), cx) {
                    Poll::Ready(Ok(())) => marks.owed = false,
                    Poll::Ready(Err(_)) => return Now::Failed,
                    Poll::Pending => {
                        marks.unsent = Some(Unsent::text(text));
                        return Now::Blocked;
                    }
                }
            }
            match direct_write::poll_write_text(cx, ws, &mut marks.unsent, text) {
                Poll::Ready(Ok(())) => batch += 1,
                Poll::Ready(Err(_)) => return Now::Failed,
                Poll::Pending => return Now::Blocked,
            }
        }
        if batch < BATCH {
            next = rx.try_recv();
        }
    }
    Now::Done
}

/// Writes what the socket still owes (tungstenite's own bytes, then a
/// frame cut short), then `first` and up to a batch of whatever else is
/// queued, waiting on the socket as long as `write_timeout` per write;
/// false if the client is gone or too slow to take it.
async fn write_batch(
    ws: &mut Socket,
    rx: &mut outbox::Receiver<Outgoing>,
    marks: &mut Marks,
    first: Option<Outgoing>,
    write_timeout: Duration,
    metrics: &crate::metrics::GatewayMetrics,
) -> bool {
    if !matches!(timeout(write_timeout, ws.flush()).await, Ok(Ok(()))) {
        return false;
    }
    marks.owed = false;
    let mut next = first;
    let mut batch = 0;
    loop {
        if !matches!(timeout(write_timeout, direct_write::finish(ws, &mut marks.unsent)).await, Ok(Ok(()))) {
            return false;
        }
        if batch >= BATCH {
            return true;
        }
        let Some(out) = next.take().or_else(|| rx.try_recv()) else { return true };
        if let Some(text) = text_of(out, marks, metrics) {
            marks.unsent = Some(Unsent::text(text));
            batch += 1;
        }
    }
}

/// Whether a read error is a frame over the size limit.
fn too_big(e: &tokio_tungstenite::tungstenite::Error) -> bool {
    matches!(e, tokio_tungstenite::tungstenite::Error::Capacity(_))
}
