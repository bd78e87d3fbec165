//! The metrics operators rely on, scraped from `/metrics` as Prometheus
//! would: close codes over real WebSockets (in process), and the build,
//! process, tick and Redis metrics of real `gateway` and `room-worker`
//! processes, through a Redis restart.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::json;
use support::Server;
use support::cluster::{Cluster, Proc, standalone_gateway, wait_until};
use tokio_tungstenite::tungstenite::Message;

/// One sample of the text format: its labels and its value.
#[derive(Debug)]
struct Sample {
    labels: BTreeMap<String, String>,
    value: f64,
}

/// The samples of metric `name` in Prometheus text `text`.
fn samples(text: &str, name: &str) -> Vec<Sample> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let (series, value) = l.rsplit_once(' ')?;
            let (metric, labels) = match series.split_once('{') {
                Some((m, rest)) => (m, rest.strip_suffix('}')?),
                None => (series, ""),
            };
            if metric != name {
                return None;
            }
            let labels = labels
                .split(',')
                .filter(|kv| !kv.is_empty())
                .filter_map(|kv| {
                    let (k, v) = kv.split_once('=')?;
                    Some((k.to_string(), v.trim_matches('"').to_string()))
                })
                .collect();
            Some(Sample { labels, value: value.parse().ok()? })
        })
        .collect()
}

/// The value of the one sample of `name` whose labels include `want`.
fn value(text: &str, name: &str, want: &[(&str, &str)]) -> Option<f64> {
    let found: Vec<f64> = samples(text, name)
        .into_iter()
        .filter(|s| want.iter().all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v)))
        .map(|s| s.value)
        .collect();
    assert!(found.len() <= 1, "{name} {want:?}: several samples");
    found.first().copied()
}

async fn scrape(addr: std::net::SocketAddr) -> String {
    let text = support::cluster::http_get(addr, "/metrics").await;
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    text
}

fn closes(text: &str, code: &str) -> f64 {
    value(text, "snakepit_ws_closes_total", &[("code", code)]).unwrap_or_else(|| panic!("no series for {code}"))
}

/// Each way a connection ends is counted once, under its code: the code
/// the client sent when it closed (none counts as 1000), 1006 when it
/// vanished, the gateway's own code when it closed; and each connection's
/// life is observed once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_close_is_counted_once_by_its_code() {
    let server = Server::start().await;
    let (_, text) = server.get("/metrics").await;
    for code in ["1000", "1001", "1006", "1008", "1009", "1011", "1012", "4000", "4008", "4009", "other"] {
        assert_eq!(closes(&text, code), 0.0, "{code} at the start");
    }

    // A player who leaves properly, a tab closed (1001), a client closing
    // without a code, an odd code, a client that vanishes.
    let mut c = server.client().await;
    c.new_player("ann", Some("closes")).await;
    c.close_with(Some(1000)).await;
    server.client().await.close_with(Some(1001)).await;
    server.client().await.close_with(None).await;
    server.client().await.close_with(Some(4321)).await;
    drop(server.client().await);
    // A message over the size limit: 1009 from the gateway.
    let mut big = server.client().await;
    big.send_raw(Message::text("x".repeat(4096))).await;
    assert_eq!(big.closed().await, Some(1009));
    // A flood: 1008.
    let mut flood = server.client().await;
    for _ in 0..400 {
        // The gateway may close (and reset) before the flood is all out.
        if !flood.try_send(json!(["ping"])).await {
            break;
        }
    }
    assert_eq!(flood.closed().await, Some(1008));

    let metrics = || async { server.get("/metrics").await.1 };
    wait_until(Duration::from_secs(5), || async {
        value(&metrics().await, "snakepit_connection_duration_seconds_count", &[]) == Some(7.0)
    })
    .await;
    let text = metrics().await;
    let want = [("1000", 2.0), ("1001", 1.0), ("other", 1.0), ("1006", 1.0), ("1009", 1.0), ("1008", 1.0)];
    for (code, n) in want {
        assert_eq!(closes(&text, code), n, "code {code}");
    }
    let total: f64 = samples(&text, "snakepit_ws_closes_total").iter().map(|s| s.value).sum();
    assert_eq!(total, 7.0, "one close per connection");
    assert_eq!(value(&text, "snakepit_connections", &[]), Some(0.0));
    // Short lives: all within the first bucket (1 s).
    assert_eq!(value(&text, "snakepit_connection_duration_seconds_bucket", &[("le", "1")]), Some(7.0));
    // Standalone exports no Redis metrics.
    assert!(samples(&text, "snakepit_redis_up").is_empty());
}

fn assert_process_metrics(text: &str, who: &str) {
    for name in
        ["process_start_time_seconds", "process_cpu_seconds_total", "process_resident_memory_bytes", "process_open_fds"]
    {
        let v = value(text, name, &[]).unwrap_or_else(|| panic!("{who}: no {name}"));
        // A young process may have used under a clock tick of CPU.
        assert!(v > 0.0 || name == "process_cpu_seconds_total", "{who}: {name} {v}");
    }
}

/// What `build_revision!` gave the binaries built from these sources.
fn revision() -> String {
    let out = std::process::Command::new("git")
        .args(["-C", env!("CARGO_MANIFEST_DIR"), "describe", "--always", "--abbrev=7", "--exclude=*"])
        .output();
    match out {
        Ok(o) if o.status.success() => String::from_utf8(o.stdout).unwrap().trim().to_string(),
        _ => "unknown".into(),
    }
}

fn assert_build_info(text: &str, binary: &str, mode: &str) {
    let info = samples(text, "snakepit_build_info");
    assert_eq!(info.len(), 1, "{binary}: {info:?}");
    let labels: Vec<(&str, &str)> = info[0].labels.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let rev = revision();
    let want = [("binary", binary), ("mode", mode), ("revision", rev.as_str()), ("version", env!("CARGO_PKG_VERSION"))];
    assert_eq!(labels, want);
    assert_eq!(info[0].value, 1.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_standalone_gateway_process_exports_its_build_and_process() {
    let g = standalone_gateway().await;
    let text = scrape(g.addr).await;
    assert_build_info(&text, "gateway", "standalone");
    assert_process_metrics(&text, "standalone");
    assert!(samples(&text, "snakepit_redis_up").is_empty(), "no Redis in standalone");
    // The rooms run in this process: their tick histograms are here too.
    assert!(value(&text, "snakepit_room_tick_duration_seconds_bucket", &[("le", "0.005")]).is_some());
}

/// The `le` bounds of histogram `name`'s buckets, in order.
fn buckets(text: &str, name: &str) -> Vec<String> {
    samples(text, &format!("{name}_bucket")).into_iter().map(|s| s.labels["le"].clone()).collect()
}

const TICK_LES: [&str; 18] = [
    "0.000001",
    "0.0000025",
    "0.000005",
    "0.00001",
    "0.000025",
    "0.00005",
    "0.0001",
    "0.00025",
    "0.0005",
    "0.001",
    "0.0025",
    "0.005",
    "0.01",
    "0.025",
    "0.05",
    "0.1",
    "0.25",
    "+Inf",
];

/// The processes of a cluster: the exact tick buckets (the 5 ms budget
/// among them) fed by a live room, their build and process metrics, and
/// Redis seen down and back, with its reconnects and resubscribes counted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_processes_export_ticks_build_process_and_redis_health() {
    let mut c = Cluster::start(1, 1).await;
    let mut player = c.client(0).await;
    let (id, _, _) = player.new_player("ann", Some("metrics")).await;
    player.join(&id).await;
    for _ in 0..5 {
        player.steer_tick(&id).await;
    }

    let (w, g) = (&c.workers[0], &c.gateways[0]);
    let worker = scrape(w.addr).await;
    for name in ["snakepit_room_tick_duration_seconds", "snakepit_room_tick_lag_seconds"] {
        assert_eq!(buckets(&worker, name), TICK_LES, "{name}");
        let count = value(&worker, &format!("{name}_count"), &[("worker", "w1")]).unwrap();
        assert!(count >= 5.0, "{name}: {count} ticks observed");
        let good = value(&worker, &format!("{name}_bucket"), &[("le", "0.005")]).unwrap();
        assert!(good <= count);
    }
    assert_build_info(&worker, "room-worker", "cluster");
    let gateway = scrape(g.addr).await;
    assert_build_info(&gateway, "gateway", "cluster");
    for (who, text) in [("worker", &worker), ("gateway", &gateway)] {
        assert_process_metrics(text, who);
        assert_eq!(value(text, "snakepit_redis_up", &[]), Some(1.0), "{who}");
        assert_eq!(value(text, "snakepit_redis_reconnects_total", &[]), Some(0.0), "{who}");
        assert_eq!(value(text, "snakepit_pubsub_resubscribes_total", &[]), Some(0.0), "{who}");
    }
    assert_eq!(value(&gateway, "snakepit_publish_errors_total", &[]), Some(0.0));

    // Redis goes away: both processes say so...
    c.redis.kill();
    for p in [&c.workers[0], &c.gateways[0]] {
        wait_until(Duration::from_secs(5), || async { redis_metric(p, "snakepit_redis_up").await == 0.0 }).await;
    }
    // ... and once it is back, that it is up, each connection (commands,
    // subscriptions) came back once, and the subscriptions were restored.
    c.redis.restart();
    for p in [&c.workers[0], &c.gateways[0]] {
        wait_until(Duration::from_secs(20), || async {
            redis_metric(p, "snakepit_redis_up").await == 1.0
                && redis_metric(p, "snakepit_redis_reconnects_total").await == 2.0
                && redis_metric(p, "snakepit_pubsub_resubscribes_total").await == 1.0
        })
        .await;
    }
    // The game goes on through the restored subscriptions.
    assert!(player.next_world(Duration::from_secs(20)).await, "no fresh world after the restart");
    // Unsteered through the outage, the snake may have died and its game
    // stopped: a join starts it again (or is refused, also a frame).
    player.send(serde_json::json!(["join"])).await;
    for _ in 0..3 {
        player.steer_tick(&id).await;
    }
    // And nothing is counted twice.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    for p in [&c.workers[0], &c.gateways[0]] {
        let text = scrape(p.addr).await;
        assert_eq!(value(&text, "snakepit_redis_reconnects_total", &[]), Some(2.0), "{}", p.name);
        assert_eq!(value(&text, "snakepit_pubsub_resubscribes_total", &[]), Some(1.0), "{}", p.name);
    }
}

async fn redis_metric(p: &Proc, name: &str) -> f64 {
    value(&scrape(p.addr).await, name, &[]).unwrap_or(f64::NAN)
}
