//! The event log: when each bot felt a fault, for scripts that cause them.
//!
//! Totals and percentiles say how bad faults were over a run; a script that
//! kills a process at a known instant needs to know which bots felt *that*
//! kill and for how long. With `--events FILE` every bot writes one JSON line
//! per event, stamped in Unix milliseconds so a script can line them up with
//! its own clock:
//!
//! - `silence`: no frame at all for at least the gap (`from`: the last frame
//!   before, `to`: the first after);
//! - `stall`: the tick number did not advance for at least the gap, frames
//!   or not (a room held after a takeover sends frames but does not step);
//! - `fault`: a close the bot did not ask for (`code`, `snake`: one was
//!   alive);
//! - `back`: the first `world` after a fault (`ms`, `outcome`);
//! - `resync`: a `world` on a connection that already had one (a new owner
//!   of the room), with the bot's snake before and after it.
//!
//! Events are rare (a healthy bot writes none), so one buffered file behind
//! a mutex is enough.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::json;

use crate::ledger::{Outcome, SnakeState};

/// One thing a bot felt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    Silence { from: Instant, to: Instant },
    Stall { from: Instant, to: Instant },
    Fault { at: Instant, code: u16, snake: bool },
    Back { at: Instant, took: Duration, outcome: Outcome, before: Option<SnakeState>, after: Option<SnakeState> },
    Resync { at: Instant, before: Option<u64>, after: Option<u64> },
}

impl Event {
    /// A resync that cost the bot its snake or part of its score. A higher
    /// score is no loss: frames the bot missed (the bus was away while the
    /// room went on) arrive at once in the world.
    pub fn rolled_back(&self) -> bool {
        matches!(self, Event::Resync { before: Some(b), after, .. } if after.is_none_or(|a| a < *b))
    }
}

/// Where the events of all bots go.
pub struct EventLog {
    out: Mutex<BufWriter<File>>,
    /// One instant and the Unix time it was, to convert the others.
    base: (Instant, u128),
}

impl EventLog {
    pub fn create(path: &Path) -> std::io::Result<EventLog> {
        let file = File::create(path)?;
        let unix = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis());
        Ok(EventLog { out: Mutex::new(BufWriter::new(file)), base: (Instant::now(), unix) })
    }

    /// Unix milliseconds of `t`.
    fn unix_ms(&self, t: Instant) -> i128 {
        let (base, unix) = self.base;
        if t >= base {
            unix as i128 + t.duration_since(base).as_millis() as i128
        } else {
            unix as i128 - base.duration_since(t).as_millis() as i128
        }
    }

    /// The JSON line of `event` of bot `bot`.
    pub fn line(&self, bot: usize, event: &Event) -> String {
        let ms = |d: Duration| d.as_millis() as u64;
        let v = match *event {
            Event::Silence { from, to } => json!({"ev": "silence", "bot": bot, "from": self.unix_ms(from),
                "to": self.unix_ms(to), "ms": ms(to.saturating_duration_since(from))}),
            Event::Stall { from, to } => json!({"ev": "stall", "bot": bot, "from": self.unix_ms(from),
                "to": self.unix_ms(to), "ms": ms(to.saturating_duration_since(from))}),
            Event::Fault { at, code, snake } => {
                json!({"ev": "fault", "bot": bot, "at": self.unix_ms(at), "code": code, "snake": snake})
            }
            Event::Back { at, took, outcome, before, after } => {
                let snake = |s: Option<SnakeState>| s.map(|s| json!({"len": s.len, "score": s.score, "head": s.head}));
                json!({"ev": "back", "bot": bot, "at": self.unix_ms(at), "ms": ms(took),
                    "outcome": format!("{outcome:?}"), "lost": outcome.lost(), "before": snake(before),
                    "after": snake(after)})
            }
            Event::Resync { at, before, after } => json!({"ev": "resync", "bot": bot, "at": self.unix_ms(at),
                "score_before": before, "score_after": after, "rolled_back": event.rolled_back()}),
        };
        v.to_string()
    }

    /// Writes the events (a failed write is dropped: the log is a
    /// measurement aid, never a reason to stop a bot).
    pub fn write(&self, bot: usize, events: &mut Vec<Event>) {
        if events.is_empty() {
            return;
        }
        let mut out = self.out.lock().unwrap_or_else(|e| e.into_inner());
        for e in events.drain(..) {
            let _ = writeln!(out, "{}", self.line(bot, &e));
        }
    }

    pub fn flush(&self) -> std::io::Result<()> {
        self.out.lock().unwrap_or_else(|e| e.into_inner()).flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_stamped_in_unix_ms_and_say_what_happened() {
        let dir = std::env::temp_dir().join(format!("swarm-events-{}", std::process::id()));
        let log = EventLog::create(&dir).unwrap();
        let t0 = log.base.0;
        let line = log.line(7, &Event::Stall { from: t0, to: t0 + Duration::from_millis(850) });
        let v: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(v["ev"], "stall");
        assert_eq!(v["bot"], 7);
        assert_eq!(v["ms"], 850);
        assert_eq!(v["to"].as_i64().unwrap() - v["from"].as_i64().unwrap(), 850);
        let now_ms = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis() as i64;
        assert!((v["from"].as_i64().unwrap() - now_ms).abs() < 5_000, "Unix milliseconds");

        let rolled = Event::Resync { at: t0, before: Some(12), after: Some(9) };
        assert!(rolled.rolled_back());
        assert!(Event::Resync { at: t0, before: Some(12), after: None }.rolled_back(), "snake gone");
        assert!(!Event::Resync { at: t0, before: Some(12), after: Some(12) }.rolled_back());
        assert!(!Event::Resync { at: t0, before: Some(12), after: Some(15) }.rolled_back(), "frames missed");
        assert!(!Event::Resync { at: t0, before: None, after: Some(3) }.rolled_back(), "no snake before");
        let v: serde_json::Value = serde_json::from_str(&log.line(1, &rolled)).unwrap();
        assert_eq!(
            (v["score_before"].as_u64(), v["score_after"].as_u64(), v["rolled_back"].as_bool()),
            (Some(12), Some(9), Some(true))
        );

        let mut events = vec![Event::Fault { at: t0, code: 1006, snake: true }];
        log.write(3, &mut events);
        assert!(events.is_empty());
        log.flush().unwrap();
        let text = std::fs::read_to_string(&dir).unwrap();
        assert!(text.contains(r#""ev":"fault""#) && text.contains(r#""code":1006"#), "{text}");
        let _ = std::fs::remove_file(&dir);
    }
}
