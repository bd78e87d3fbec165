//! The metrics every process exports about itself, whatever it runs: its
//! build ([`BuildInfo`]) and the standard `process_*` metrics of the
//! prometheus crate (`process_start_time_seconds`, so uptime is
//! `time() - process_start_time_seconds`; `process_cpu_seconds_total`,
//! `process_resident_memory_bytes`, `process_open_fds` and a few more),
//! read from `/proc` at each scrape (Linux; elsewhere they are absent).

use prometheus::Registry;

use crate::build_info::BuildInfo;

/// Registers the build info and the process collector into `registry`.
pub fn register(registry: &Registry, build: &BuildInfo) -> Result<(), prometheus::Error> {
    build.register(registry)?;
    #[cfg(target_os = "linux")]
    registry.register(Box::new(prometheus::process_collector::ProcessCollector::for_self()))?;
    Ok(())
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::build_info::{Binary, Mode};

    #[test]
    fn process_metrics_are_gathered() {
        let r = Registry::new();
        let build = BuildInfo { binary: Binary::Gateway, mode: Mode::Standalone, version: "0", revision: "unknown" };
        register(&r, &build).unwrap();
        let names: Vec<String> = r.gather().iter().map(|f| f.name().to_string()).collect();
        for want in [
            "snakepit_build_info",
            "process_start_time_seconds",
            "process_cpu_seconds_total",
            "process_resident_memory_bytes",
            "process_open_fds",
        ] {
            assert!(names.iter().any(|n| n == want), "{want} missing from {names:?}");
        }
    }
}
