//! Durations on the command line are seconds, as floats (`--lease-secs
//! 0.5`); each is checked here, with the flag's name in the error.

use std::time::Duration;

#[derive(Debug, thiserror::Error)]
#[error("{0} must be a positive number of seconds")]
pub struct SecondsError(pub &'static str);

/// Seconds from the command line as a duration (more than zero).
pub fn secs(name: &'static str, v: f64) -> Result<Duration, SecondsError> {
    Duration::try_from_secs_f64(v).ok().filter(|d| !d.is_zero()).ok_or(SecondsError(name))
}

/// Like [`secs`], where zero means "none".
pub fn secs_or_zero(name: &'static str, v: f64) -> Result<Duration, SecondsError> {
    Duration::try_from_secs_f64(v).map_err(|_| SecondsError(name))
}
