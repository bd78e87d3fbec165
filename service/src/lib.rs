//! What every Snakepit process does alike, whatever it runs: logging
//! ([`telemetry`]), binding its listener ([`listen`]), a graceful shutdown
//! on SIGTERM and SIGINT ([`shutdown`]), its build and process metrics
//! ([`build_info`], [`process_metrics`]) and the health and metrics routes
//! it serves ([`health`]).

pub mod build_info;
pub mod health;
pub mod listen;
pub mod process_metrics;
pub mod shutdown;
pub mod telemetry;
