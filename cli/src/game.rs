//! The game and room settings as flags, shared by the `room-worker` and the
//! standalone `gateway` (which runs the rooms itself). A cluster gateway
//! uses only the room capacity and the seat hold of these.

use snakepit_game::RoomConfig;
use snakepit_game::settings::{GameSettings, SettingsError};

use crate::seconds::{SecondsError, secs};

#[derive(Clone, Copy, Debug, clap::ValueEnum)]
pub enum Preset {
    /// The original game's settings at 10 ticks/s.
    Default,
    /// The original game exactly (2.3 ticks/s).
    Original,
}

#[derive(Clone, Debug, clap::Args)]
#[command(
    next_help_heading = "Game (the workers' in a cluster; a cluster gateway uses only --max-players and --seat-hold-secs)"
)]
pub struct GameArgs {
    /// Settings preset; the options below override it.
    #[arg(long, env = "SNAKEPIT_PRESET", value_enum, default_value = "default")]
    pub preset: Preset,
    /// World steps per second.
    #[arg(long, env = "SNAKEPIT_TICK_RATE")]
    pub tick_rate: Option<f64>,
    /// Field width in cells.
    #[arg(long, env = "SNAKEPIT_WIDTH")]
    pub width: Option<u16>,
    /// Field height in cells.
    #[arg(long, env = "SNAKEPIT_HEIGHT")]
    pub height: Option<u16>,
    /// Snakes alive at once, and seats per room.
    #[arg(long, env = "SNAKEPIT_MAX_PLAYERS")]
    pub max_players: Option<u16>,
    /// Length of a new snake.
    #[arg(long, env = "SNAKEPIT_INITIAL_LENGTH")]
    pub initial_length: Option<u16>,
    /// Chance per moving snake per tick that a digit appears (0..1).
    #[arg(long, env = "SNAKEPIT_DIGIT_SPAWN_RATE")]
    pub digit_spawn_rate: Option<f64>,
    /// Chance per tick that a stone appears (0..1).
    #[arg(long, env = "SNAKEPIT_STONE_SPAWN_RATE")]
    pub stone_spawn_rate: Option<f64>,
    /// Smallest digit value.
    #[arg(long, env = "SNAKEPIT_DIGIT_MIN")]
    pub digit_min: Option<u8>,
    /// Largest digit value.
    #[arg(long, env = "SNAKEPIT_DIGIT_MAX")]
    pub digit_max: Option<u8>,
    /// No stones.
    #[arg(long, env = "SNAKEPIT_NO_STONES")]
    pub no_stones: bool,
    /// Points for the snake another snake ran into.
    #[arg(long, env = "SNAKEPIT_KILL_POINTS")]
    pub kill_points: Option<u64>,
    /// Robot snakes a lone player plays against; each further person who
    /// plays takes one robot's place (0: none).
    #[arg(long, env = "SNAKEPIT_ROBOTS")]
    pub robots: Option<u16>,
    /// Seconds a disconnected player's snake waits, parked, for its player.
    #[arg(long, env = "SNAKEPIT_RESUME_GRACE_SECS", default_value_t = 5.0)]
    pub resume_grace_secs: f64,
    /// Seconds an empty room lives before it retires.
    #[arg(long, env = "SNAKEPIT_EMPTY_ROOM_SECS", default_value_t = 30.0)]
    pub empty_room_secs: f64,
    /// Seconds between snapshots of a room, for takeover by another worker
    /// (cluster only: a standalone gateway takes none).
    #[arg(long, env = "SNAKEPIT_SNAPSHOT_SECS", default_value_t = 1.0)]
    pub snapshot_secs: f64,
    /// Seconds without word from a member's gateway before the member counts
    /// as disconnected (gateways vouch for their members every few seconds).
    #[arg(long, env = "SNAKEPIT_PRESENCE_TIMEOUT_SECS", default_value_t = 20.0)]
    pub presence_timeout_secs: f64,
    /// Seconds a room holds its players' seats in the directory at each
    /// confirmation (every third of it); a gateway's fresh seat is held
    /// twice as long, until the room confirms it. A seat whose player is
    /// gone (its gateway died) comes free within this.
    #[arg(long, env = "SNAKEPIT_SEAT_HOLD_SECS", default_value_t = 15.0)]
    pub seat_hold_secs: f64,
    /// Write snapshots with the grid packed (a tenth of a worker's time
    /// less than cell by cell). On by default: the release before this one
    /// reads them. Set SNAKEPIT_PACKED_SNAPSHOTS=false while rolling in from
    /// an older release, or back to one (docs/deploy.md); the bare flag
    /// still means true.
    #[arg(
        long,
        env = "SNAKEPIT_PACKED_SNAPSHOTS",
        default_value_t = true,
        num_args = 0..=1,
        default_missing_value = "true",
        action = clap::ArgAction::Set
    )]
    pub packed_snapshots: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum ArgsError {
    #[error(transparent)]
    Settings(#[from] SettingsError),
    #[error(transparent)]
    Seconds(#[from] SecondsError),
}

impl GameArgs {
    pub fn settings(&self) -> Result<GameSettings, ArgsError> {
        let mut s = match self.preset {
            Preset::Default => GameSettings::default(),
            Preset::Original => GameSettings::original(),
        };
        s.tick_rate = self.tick_rate.unwrap_or(s.tick_rate);
        s.width = self.width.unwrap_or(s.width);
        s.height = self.height.unwrap_or(s.height);
        s.max_players = self.max_players.unwrap_or(s.max_players);
        s.initial_length = self.initial_length.unwrap_or(s.initial_length);
        s.digit_spawn_rate = self.digit_spawn_rate.unwrap_or(s.digit_spawn_rate);
        s.stone_spawn_rate = self.stone_spawn_rate.unwrap_or(s.stone_spawn_rate);
        s.digit_min = self.digit_min.unwrap_or(s.digit_min);
        s.digit_max = self.digit_max.unwrap_or(s.digit_max);
        s.stones = s.stones && !self.no_stones;
        s.kill_points = self.kill_points.unwrap_or(s.kill_points);
        s.robots = self.robots.unwrap_or(s.robots);
        s.validate()?;
        Ok(s)
    }

    pub fn room_config(&self) -> Result<RoomConfig, ArgsError> {
        Ok(RoomConfig {
            settings: self.settings()?,
            grace: secs("resume grace", self.resume_grace_secs)?,
            empty_ttl: secs("empty room", self.empty_room_secs)?,
            snapshot_every: Some(secs("snapshot", self.snapshot_secs)?),
            presence_timeout: secs("presence timeout", self.presence_timeout_secs)?,
            seat_hold: secs("seat hold", self.seat_hold_secs)?,
            packed_snapshots: self.packed_snapshots,
        })
    }
}

/// The game flags only rooms use (ids as clap names them): a cluster
/// gateway runs no rooms, so on its command line they are ignored with a
/// warning (the workers' flags decide). From the environment they pass in
/// silence: one ConfigMap may serve both binaries.
const ROOM_ONLY: &[&str] = &[
    "tick_rate",
    "width",
    "height",
    "initial_length",
    "digit_spawn_rate",
    "stone_spawn_rate",
    "digit_min",
    "digit_max",
    "no_stones",
    "kill_points",
    "robots",
    "resume_grace_secs",
    "empty_room_secs",
    "snapshot_secs",
    "presence_timeout_secs",
    "packed_snapshots",
];

/// The first room-only game flag given on the command line, as `--flag`.
pub fn room_only_flag_given(matches: &clap::ArgMatches) -> Option<String> {
    ROOM_ONLY
        .iter()
        .find(|id| matches.value_source(id) == Some(clap::parser::ValueSource::CommandLine))
        .map(|id| format!("--{}", id.replace('_', "-")))
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        game: GameArgs,
    }

    fn matches(args: &[&str]) -> clap::ArgMatches {
        use clap::CommandFactory;
        Cli::command().get_matches_from(std::iter::once("test").chain(args.iter().copied()))
    }

    #[test]
    fn room_only_flags_are_named_from_the_command_line_only() {
        assert_eq!(room_only_flag_given(&matches(&["--max-players", "4", "--seat-hold-secs", "9"])), None);
        assert_eq!(room_only_flag_given(&matches(&["--tick-rate", "20"])).as_deref(), Some("--tick-rate"));
        assert_eq!(room_only_flag_given(&matches(&["--no-stones"])).as_deref(), Some("--no-stones"));
        // Every name is a real flag of GameArgs (a rename would not go unseen).
        use clap::CommandFactory;
        let cmd = Cli::command();
        for id in ROOM_ONLY {
            assert!(cmd.get_arguments().any(|a| a.get_id() == *id), "{id} is no flag");
        }
    }

    #[test]
    fn snapshots_are_packed_unless_turned_off() {
        let packed = |args: &[&str]| {
            Cli::try_parse_from(std::iter::once("test").chain(args.iter().copied())).unwrap().game.packed_snapshots
        };
        assert!(packed(&[]));
        assert!(!packed(&["--packed-snapshots", "false"]));
        assert!(!packed(&["--packed-snapshots=false"]));
        assert!(packed(&["--packed-snapshots=true"]));
        // As the release that added the flag was told to turn it on.
        assert!(packed(&["--packed-snapshots"]));
        assert!(packed(&["--packed-snapshots", "--robots", "1"]));
    }

    fn settings(args: &[&str]) -> Result<GameSettings, ArgsError> {
        let cli = Cli::try_parse_from(std::iter::once("test").chain(args.iter().copied())).unwrap();
        cli.game.settings()
    }

    #[test]
    fn robots_are_off_by_default_set_by_the_flag_and_bounded_by_max_players() {
        assert_eq!(settings(&[]).unwrap().robots, 0);
        assert_eq!(settings(&["--preset", "original"]).unwrap().robots, 0);
        assert_eq!(settings(&["--robots", "3"]).unwrap().robots, 3);
        assert!(matches!(settings(&["--robots", "11"]), Err(ArgsError::Settings(SettingsError::Robots))));
        assert_eq!(settings(&["--robots", "11", "--max-players", "12"]).unwrap().robots, 11);
    }
}
