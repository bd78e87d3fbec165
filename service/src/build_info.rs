//! Which build a process is, as a metric: `snakepit_build_info{version,
//! revision,binary,mode} 1`. Operators join on it to see which version runs
//! where, and a dashboard marks a rollout when the revision changes.
//!
//! The revision is fixed at compile time, in the binary's own crate (the
//! [`build_revision!`](crate::build_revision) macro expands there), so a new
//! commit rebuilds only the small `main` and not the libraries: the
//! `SNAKEPIT_REVISION` variable of the build if set (an image built without
//! `.git`), else `git describe` of the sources' commit, else `unknown`.

use prometheus::{IntGauge, Opts, Registry};

#[doc(hidden)]
pub use git_version::git_version as __git_version;

/// The short git hash of the commit the calling crate was built from, or
/// the build's `SNAKEPIT_REVISION`, or `unknown`.
#[macro_export]
macro_rules! build_revision {
    () => {
        match option_env!("SNAKEPIT_REVISION") {
            Some(revision) => revision,
            // Tags excluded: always the hash, never a tag name.
            None => $crate::build_info::__git_version!(
                args = ["--always", "--abbrev=7", "--exclude=*"],
                fallback = "unknown"
            ),
        }
    };
}

/// Which program a process runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Binary {
    Gateway,
    RoomWorker,
}

/// A gateway alone (the whole game in one process) or a process of a cluster.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    Standalone,
    Cluster,
}

#[derive(Clone, Copy, Debug)]
pub struct BuildInfo {
    pub binary: Binary,
    pub mode: Mode,
    /// The crate version, `env!("CARGO_PKG_VERSION")` of the binary.
    pub version: &'static str,
    /// From [`build_revision!`](crate::build_revision).
    pub revision: &'static str,
}

impl Binary {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Gateway => "gateway",
            Self::RoomWorker => "room-worker",
        }
    }
}

impl Mode {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Standalone => "standalone",
            Self::Cluster => "cluster",
        }
    }
}

impl BuildInfo {
    /// Registers `snakepit_build_info`, always 1, its labels the build.
    pub fn register(&self, registry: &Registry) -> Result<(), prometheus::Error> {
        let opts = Opts::new("snakepit_build_info", "Always 1; the labels say which build this process runs")
            .const_label("version", self.version)
            .const_label("revision", self.revision)
            .const_label("binary", self.binary.as_str())
            .const_label("mode", self.mode.as_str());
        let gauge = IntGauge::with_opts(opts)?;
        gauge.set(1);
        registry.register(Box::new(gauge))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use prometheus::{Encoder, TextEncoder};

    use super::*;

    #[test]
    fn build_info_is_one_with_its_labels() {
        let r = Registry::new();
        let build =
            BuildInfo { binary: Binary::RoomWorker, mode: Mode::Cluster, version: "1.2.3", revision: "abc1234" };
        build.register(&r).unwrap();
        let mut text = Vec::new();
        TextEncoder::new().encode(&r.gather(), &mut text).unwrap();
        let text = String::from_utf8(text).unwrap();
        assert!(
            text.contains(
                r#"snakepit_build_info{binary="room-worker",mode="cluster",revision="abc1234",version="1.2.3"} 1"#
            ),
            "{text}"
        );
    }

    /// Built from this repository, the revision is a short hash.
    #[test]
    fn the_revision_is_a_short_hash_or_unknown() {
        let revision: &str = crate::build_revision!();
        let hash = revision.len() >= 7 && revision.chars().all(|c| c.is_ascii_hexdigit());
        assert!(hash || revision == "unknown", "{revision}");
    }
}
