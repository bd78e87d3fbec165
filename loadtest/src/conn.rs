//! One bot's task: connecting, the read/send loop, closing, reconnecting.
//!
//! All protocol and measuring logic is in the library's [`Bot`]; this file
//! is only the network around it, one tokio task per bot. The loop sends
//! what the bot queued, then waits for whichever comes first: a frame, the
//! bot's own timer (a re-join), or the stop signal. Reconnecting goes to the
//! next URL of the list (as a Kubernetes Service would send a drained
//! gateway's clients elsewhere), is paced (shared connect-rate slots) and
//! waits as [`Backoff`] says: full jitter from 1 s up to 10 s, a spread
//! first wait after a drain, a quick move on after a refusal.

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use rand::SeedableRng;
use rand::rngs::SmallRng;
use snakepit_loadtest::backoff::{Backoff, Why};
use snakepit_loadtest::bot::{Bot, BotConfig, Msg, Role};
use snakepit_loadtest::events::{Event, EventLog};
use snakepit_loadtest::pace::{Pacer, ramp_offset};
use snakepit_loadtest::report::BotFigures;
use snakepit_loadtest::stats::{Counter, Stats};
use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::{self, Message, Utf8Bytes};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream, connect_async_with_config};

/// A connection attempt that takes longer fails.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// The backoff's base and cap: the n-th failure in a row waits up to
/// min(RETRY_CAP, RETRY_BASE * 2^n).
pub const RETRY_BASE: Duration = Duration::from_secs(1);
pub const RETRY_CAP: Duration = Duration::from_secs(10);
/// A connection open this long "lasted": the backoff starts over.
pub const LASTED: Duration = Duration::from_secs(10);
/// How long a clean close may wait for the server's close frame.
pub const CLOSE_WAIT: Duration = Duration::from_secs(2);

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// What every bot task shares.
pub struct Shared {
    pub stats: Arc<Stats>,
    pub pacer: Pacer,
    pub start: Instant,
    pub ramp: Duration,
    pub bots: usize,
    pub ws_config: WebSocketConfig,
    pub events: Option<Arc<EventLog>>,
}

/// The small buffers thousands of connections can afford.
pub fn ws_config() -> WebSocketConfig {
    WebSocketConfig::default()
        .read_buffer_size(8 * 1024)
        .write_buffer_size(0)
        .max_message_size(Some(1 << 20))
        .max_frame_size(Some(1 << 20))
}

/// How a connection ended.
enum Ended {
    /// The run is over; the socket was closed cleanly.
    Stopped,
    /// The server closed it (with this code; 1005: a close frame without a
    /// code, 1006: no close frame at all) or it broke.
    Closed(u16),
}

/// Resolves once the run should stop.
async fn stopped(stop: &mut watch::Receiver<bool>) {
    // An error means the sender is gone: stop as well.
    let _ = stop.wait_for(|s| *s).await;
}

/// Sleeps until `at`; false if the run stopped first.
async fn sleep_until(at: Instant, stop: &mut watch::Receiver<bool>) -> bool {
    tokio::select! {
        () = tokio::time::sleep_until(at.into()) => true,
        () = stopped(stop) => false,
    }
}

fn message(m: Msg) -> Message {
    Message::Text(match m {
        Msg::Static(s) => Utf8Bytes::from_static(s),
        Msg::Owned(s) => Utf8Bytes::from(s),
    })
}

fn error_kind(e: &tungstenite::Error) -> String {
    match e {
        tungstenite::Error::Io(io) => format!("io: {:?}", io.kind()),
        tungstenite::Error::Http(resp) => format!("http {}", resp.status()),
        other => {
            let text = other.to_string();
            text.chars().take(60).collect()
        }
    }
}

fn is_refused(e: &tungstenite::Error) -> bool {
    matches!(e, tungstenite::Error::Io(io) if io.kind() == std::io::ErrorKind::ConnectionRefused)
}

/// Runs bot `cfg` until the stop signal, starting on URL `cfg.index` of
/// `urls` and moving to the next one on every reconnect; its own totals.
pub async fn run_bot(
    shared: Arc<Shared>,
    cfg: BotConfig,
    urls: Arc<[Arc<str>]>,
    mut stop: watch::Receiver<bool>,
) -> BotFigures {
    let stats = &*shared.stats;
    let mut rng = SmallRng::seed_from_u64(cfg.seed.rotate_left(17) ^ cfg.index as u64);
    let first = shared.start + ramp_offset(cfg.index, shared.bots, shared.ramp);
    let mut at_url = cfg.index % urls.len().max(1);
    let mut bot = Bot::new(cfg, Instant::now());
    let mut out = Vec::with_capacity(4);
    let mut backoff = Backoff::new(RETRY_BASE, RETRY_CAP, urls.len());
    let mut go = sleep_until(first, &mut stop).await;
    while go {
        let Some(url) = urls.get(at_url).cloned() else { break };
        let slot = shared.pacer.slot(Instant::now());
        if !sleep_until(slot, &mut stop).await {
            break;
        }
        let attempt = Instant::now();
        bot.count(Counter::ConnectAttempts);
        let connect =
            tokio::time::timeout(CONNECT_TIMEOUT, connect_async_with_config(&*url, Some(shared.ws_config), true));
        let result = tokio::select! {
            r = connect => r,
            () = stopped(&mut stop) => break,
        };
        let why = match result {
            Ok(Ok((ws, _response))) => {
                bot.count(Counter::Connected);
                bot.connected(attempt, Instant::now());
                // After `connected`: a resuming spectator bot counts as a player.
                let player = bot.role() == Role::Player;
                stats.opened(player);
                let opened = Instant::now();
                let log = shared.events.as_deref();
                let ended = session(&mut bot, ws, stats, log, &mut stop, &mut out).await;
                stats.closed(bot.role() == Role::Player);
                if opened.elapsed() >= LASTED {
                    backoff.reset();
                }
                match ended {
                    Ended::Stopped => {
                        go = false;
                        Why::Failed
                    }
                    Ended::Closed(code) => {
                        bot.count(Counter::UnexpectedCloses);
                        bot.fault(code, Instant::now());
                        stats.close_code(code);
                        tracing::debug!(bot = bot.config().index, code, "connection closed by the server");
                        Why::of_close(code)
                    }
                }
            }
            Ok(Err(e)) => {
                bot.count(Counter::ConnectFailed);
                stats.connect_error(error_kind(&e));
                tracing::debug!(bot = bot.config().index, error = %e, "connect failed");
                if is_refused(&e) { Why::Refused } else { Why::Failed }
            }
            Err(_) => {
                bot.count(Counter::ConnectFailed);
                stats.connect_error("timeout".into());
                Why::Failed
            }
        };
        // Hands the batch over (and ends the session if there was one).
        bot.disconnected(Instant::now(), stats);
        write_events(&mut bot, shared.events.as_deref());
        if go {
            at_url = (at_url + 1) % urls.len();
            let wait = backoff.next(why, &mut rng);
            go = sleep_until(Instant::now() + wait, &mut stop).await;
        }
    }
    bot.disconnected(Instant::now(), stats);
    let t = bot.tally();
    BotFigures {
        frames: t.lifetime(Counter::Frames),
        bytes: t.lifetime(Counter::Bytes),
        deaths: t.lifetime(Counter::Deaths),
        connects: t.lifetime(Counter::Connected),
        failures: t.lifetime(Counter::ConnectFailed) + t.lifetime(Counter::UnexpectedCloses),
        not_back: u64::from(bot.not_back()),
    }
}

/// Hands what the bot noted to the event log, if there is one.
fn write_events(bot: &mut Bot, log: Option<&EventLog>) {
    if let Some(log) = log {
        let mut events: Vec<Event> = Vec::new();
        bot.take_events(&mut events);
        log.write(bot.config().index, &mut events);
    }
}

/// One open connection, until the stop signal or the server ends it.
async fn session(
    bot: &mut Bot,
    mut ws: Ws,
    stats: &Stats,
    log: Option<&EventLog>,
    stop: &mut watch::Receiver<bool>,
    out: &mut Vec<Msg>,
) -> Ended {
    let timer = tokio::time::sleep(Duration::from_secs(3600));
    tokio::pin!(timer);
    let mut armed: Option<Instant> = None;
    loop {
        bot.take_messages(out);
        for m in out.drain(..) {
            if ws.send(message(m)).await.is_err() {
                return Ended::Closed(1006);
            }
        }
        let wake = bot.next_wakeup();
        if wake != armed {
            if let Some(at) = wake {
                timer.as_mut().reset(at.into());
            }
            armed = wake;
        }
        tokio::select! {
            biased;
            () = stopped(stop) => {
                close(&mut ws).await;
                return Ended::Stopped;
            }
            msg = ws.next() => match msg {
                Some(Ok(Message::Text(text))) => {
                    bot.on_frame(text.as_bytes(), Instant::now(), stats);
                    write_events(bot, log);
                }
                Some(Ok(Message::Close(frame))) => {
                    return Ended::Closed(frame.map_or(1005, |f| u16::from(f.code)));
                }
                Some(Ok(_)) => {}
                Some(Err(_)) | None => return Ended::Closed(1006),
            },
            () = &mut timer, if armed.is_some() => {
                armed = None;
                bot.on_timer(Instant::now());
            }
        }
    }
}

/// Sends our close frame and waits (briefly) for the server's.
async fn close(ws: &mut Ws) {
    let _ = ws.close(None).await;
    let _ = tokio::time::timeout(CLOSE_WAIT, async {
        while let Some(Ok(m)) = ws.next().await {
            if m.is_close() {
                break;
            }
        }
    })
    .await;
}
