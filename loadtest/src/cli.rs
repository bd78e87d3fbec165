//! The command line of `swarm`.
//!
//! Every knob has a flag and a `SWARM_*` environment variable, so a script
//! or a CI job can set a run up either way. Durations read like `60s`,
//! `500ms`, `2m` or a bare number of seconds.

use std::time::Duration;

use clap::Parser;

/// Most bots one run may open (a bound, not a target).
pub const MAX_BOTS: usize = 100_000;

/// Snakepit swarm: opens many WebSocket connections to Snakepit gateways,
/// plays (or watches) with steering bots, and reports what they measured:
/// connections held and failed, frames and bytes per second, the interval
/// between tick frames, input-to-echo latency, deaths and errors. It stops
/// by itself after --duration, and loads only this machine unless told
/// otherwise.
#[derive(Debug, Clone, Parser)]
#[command(name = "swarm", version)]
pub struct Args {
    /// Gateway WebSocket URL(s): comma-separated or repeated; bots are
    /// spread over them round-robin, and a bot that reconnects tries the
    /// next one in the list (URLs nobody listens on are passed over).
    #[arg(long = "url", env = "SWARM_URL", value_delimiter = ',', default_value = "ws://127.0.0.1:8080/connect")]
    pub urls: Vec<String>,
    /// Number of bots (connections), spectators included.
    #[arg(long, env = "SWARM_PLAYERS", default_value_t = 100, value_parser = parse_bots)]
    pub players: usize,
    /// How long the whole run lasts, ramp included; then every socket is closed.
    #[arg(long, env = "SWARM_DURATION", default_value = "60s", value_parser = parse_duration)]
    pub duration: Duration,
    /// Share (0..1) of bots that only watch a room instead of playing.
    #[arg(long, env = "SWARM_SPECTATORS", default_value_t = 0.0, value_parser = parse_share)]
    pub spectators: f64,
    /// Time over which the bots' first connections are spread.
    #[arg(long, env = "SWARM_RAMP", default_value = "10s", value_parser = parse_duration)]
    pub ramp: Duration,
    /// Players per named room (swarm0, swarm1, ...); 0 lets the gateway place them.
    #[arg(long, env = "SWARM_ROOM_SIZE", default_value_t = 0)]
    pub room_size: usize,
    /// Print the final report as one JSON object instead of text.
    #[arg(long, env = "SWARM_JSON")]
    pub json: bool,
    /// Seed of the bots' random choices (default: from the clock).
    #[arg(long, env = "SWARM_SEED")]
    pub seed: Option<u64>,
    /// Most new connections started per second (reconnects included).
    #[arg(long, env = "SWARM_CONNECT_RATE", default_value_t = 500.0, value_parser = parse_rate)]
    pub connect_rate: f64,
    /// Allow URLs whose host is not a loopback address.
    #[arg(long, env = "SWARM_ALLOW_REMOTE")]
    pub allow_remote: bool,
    /// Exit non-zero if the ledger lost a snake (alive before a close the
    /// bot did not ask for, not back alive with the same length and score)
    /// or a bot was not back by the end, or a resync on a live connection
    /// (a room's new owner) found its snake dead or its score lower.
    #[arg(long, env = "SWARM_FAIL_ON_LOSS")]
    pub fail_on_loss: bool,
    /// Write each bot's events (silences and stalls of at least
    /// --events-gap, faults, returns, resyncs) to this file, one JSON line
    /// each, stamped in Unix milliseconds.
    #[arg(long, env = "SWARM_EVENTS")]
    pub events: Option<std::path::PathBuf>,
    /// The shortest silence or stall the event log notes.
    #[arg(long, env = "SWARM_EVENTS_GAP", default_value = "300ms", value_parser = parse_duration)]
    pub events_gap: Duration,
}

/// `60s`, `500ms`, `2m`, `1.5s`, or a bare number of seconds.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let t = text.trim();
    let (number, unit) = match t.find(|c: char| !(c.is_ascii_digit() || c == '.')) {
        Some(i) => t.split_at(i),
        None => (t, "s"),
    };
    let value: f64 = number.parse().map_err(|_| format!("{text:?} is not a duration like 60s, 500ms or 2m"))?;
    let secs = match unit.trim() {
        "ms" => value / 1000.0,
        "s" => value,
        "m" | "min" => value * 60.0,
        "h" => value * 3600.0,
        other => return Err(format!("unknown unit {other:?} in {text:?} (use ms, s, m or h)")),
    };
    Duration::try_from_secs_f64(secs).map_err(|e| format!("{text:?}: {e}"))
}

fn parse_share(text: &str) -> Result<f64, String> {
    let v: f64 = text.trim().parse().map_err(|_| format!("{text:?} is not a number"))?;
    if (0.0..=1.0).contains(&v) { Ok(v) } else { Err(format!("{v} is not between 0 and 1")) }
}

fn parse_rate(text: &str) -> Result<f64, String> {
    let v: f64 = text.trim().parse().map_err(|_| format!("{text:?} is not a number"))?;
    if v.is_finite() && v >= 1.0 { Ok(v) } else { Err(format!("{v}: the rate must be at least 1 per second")) }
}

fn parse_bots(text: &str) -> Result<usize, String> {
    let v: usize = text.trim().parse().map_err(|_| format!("{text:?} is not a count"))?;
    if (1..=MAX_BOTS).contains(&v) { Ok(v) } else { Err(format!("{v}: between 1 and {MAX_BOTS} bots")) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("60s"), Ok(Duration::from_secs(60)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("1.5s"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_duration("30"), Ok(Duration::from_secs(30)));
        assert!(parse_duration("soon").is_err());
        assert!(parse_duration("5d").is_err());
        assert!(parse_duration("-5s").is_err());
    }

    #[test]
    fn the_documented_command_line_parses() {
        let a = Args::try_parse_from([
            "swarm",
            "--url",
            "ws://127.0.0.1:8080/connect,ws://127.0.0.1:8081/connect",
            "--url",
            "ws://localhost:8082/connect",
            "--players",
            "1000",
            "--duration",
            "60s",
            "--spectators",
            "0.1",
            "--ramp",
            "10s",
            "--room-size",
            "0",
            "--json",
            "--seed",
            "5",
            "--connect-rate",
            "500",
            "--fail-on-loss",
            "--events",
            "target/events.jsonl",
            "--events-gap",
            "250ms",
        ])
        .unwrap();
        assert_eq!(a.urls.len(), 3);
        assert!(a.fail_on_loss);
        assert_eq!(
            (a.events.as_deref(), a.events_gap),
            (Some(std::path::Path::new("target/events.jsonl")), Duration::from_millis(250))
        );
        assert_eq!((a.players, a.spectators, a.seed, a.json), (1000, 0.1, Some(5), true));
        assert!(Args::try_parse_from(["swarm", "--spectators", "1.5"]).is_err());
        assert!(Args::try_parse_from(["swarm", "--players", "0"]).is_err());
        assert!(Args::try_parse_from(["swarm", "--connect-rate", "0"]).is_err());
    }
}
