//! Signals, on the real `gateway` binary: the first SIGTERM starts the
//! drain, a second one during it exits at once.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::os::unix::process::ExitStatusExt as _;
use std::time::Duration;

use support::cluster::{Proc, http_get};
use tokio::time::Instant;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_sigterm_during_the_drain_exits_at_once_with_143() {
    let mut g = Proc::standalone_gateway(
        &format!("signals-{}", std::process::id()),
        &["--listen", "127.0.0.1:0", "--drain-delay-secs", "30"],
    )
    .await;
    assert!(http_get(g.addr, "/readyz").await.contains(" 200 "));

    // The first one drains: not ready, still running, still serving.
    g.sigterm();
    let mut ready = String::new();
    for _ in 0..50 {
        ready = http_get(g.addr, "/readyz").await;
        if ready.contains(" 503 ") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(ready.contains(" 503 "), "not draining after a SIGTERM: {ready:?}");
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(g.running(), "the first SIGTERM must drain, not exit");
    assert!(http_get(g.addr, "/healthz").await.contains(" 200 "), "serving on during the drain");

    // The second one ends it, 29 s before the drain would have.
    let second = Instant::now();
    g.sigterm();
    let status = g.wait_exit(Duration::from_secs(1)).await;
    assert!(second.elapsed() < Duration::from_secs(1));
    assert_eq!(status.code(), Some(143), "exit status {status:?} (signal {:?})", status.signal());
}
