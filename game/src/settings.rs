//! Game settings. The original game's values are one named preset; the
//! default differs only in its faster tick (10/s).

use serde::{Deserialize, Serialize};

/// Colours 1..=6 are players' and digits'; 0 is text, stones and the dead.
pub const COLOURS: u8 = 6;

/// The largest settings `validate` accepts: they bound the largest frame a
/// room can send (see `frame::MAX_WELCOME_LEN`).
pub const MAX_SIDE: u16 = 200;
pub const MAX_PLAYERS: u16 = 100;
pub const MAX_TOP_SCORES: usize = 100;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct GameSettings {
    /// World steps per second.
    pub tick_rate: f64,
    pub width: u16,
    pub height: u16,
    /// Snakes alive at once, and seats of a room.
    pub max_players: u16,
    pub initial_length: u16,
    /// Chance per moving snake per tick.
    pub digit_spawn_rate: f64,
    /// Chance per tick.
    pub stone_spawn_rate: f64,
    pub digit_min: u8,
    pub digit_max: u8,
    pub stones: bool,
    /// Points for the snake whose body another snake ran into.
    pub kill_points: u64,
    /// Length of the top scores list.
    pub top_scores: usize,
    /// Robot snakes a lone person plays against; each further person
    /// takes one robot's place (see `Game::robots_wanted`, `robot.rs`).
    /// None in a snapshot from before.
    #[serde(default)]
    pub robots: u16,
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SettingsError {
    #[error("tick rate must be between 0.1 and 100 per second")]
    TickRate,
    #[error("field must be between 10x10 and 200x200 cells")]
    Field,
    #[error("max players must be between 1 and 100")]
    MaxPlayers,
    #[error("initial length must be at least 1 and fit the field")]
    InitialLength,
    #[error("spawn rates must be between 0 and 1")]
    SpawnRate,
    #[error("digits must satisfy 1 <= min <= max <= 9")]
    Digits,
    #[error("top scores must keep between 1 and 100 entries")]
    TopScores,
    #[error("robots must be at most max players")]
    Robots,
}

impl GameSettings {
    /// The original game, as the article shipped it.
    pub fn original() -> Self {
        Self {
            tick_rate: 2.3,
            width: 50,
            height: 25,
            max_players: 10,
            initial_length: 3,
            digit_spawn_rate: 0.06,
            stone_spawn_rate: 0.06,
            digit_min: 1,
            digit_max: 9,
            stones: true,
            kill_points: 0,
            top_scores: 15,
            robots: 0,
        }
    }

    pub fn validate(&self) -> Result<(), SettingsError> {
        if !(0.1..=100.0).contains(&self.tick_rate) {
            return Err(SettingsError::TickRate);
        }
        if !(10..=MAX_SIDE).contains(&self.width) || !(10..=MAX_SIDE).contains(&self.height) {
            return Err(SettingsError::Field);
        }
        if !(1..=MAX_PLAYERS).contains(&self.max_players) {
            return Err(SettingsError::MaxPlayers);
        }
        if self.initial_length == 0 || self.initial_length >= self.width.min(self.height) / 2 {
            return Err(SettingsError::InitialLength);
        }
        let rate = 0.0..=1.0;
        if !rate.contains(&self.digit_spawn_rate) || !rate.contains(&self.stone_spawn_rate) {
            return Err(SettingsError::SpawnRate);
        }
        if self.digit_min == 0 || self.digit_min > self.digit_max || self.digit_max > 9 {
            return Err(SettingsError::Digits);
        }
        if !(1..=MAX_TOP_SCORES).contains(&self.top_scores) {
            return Err(SettingsError::TopScores);
        }
        if self.robots > self.max_players {
            return Err(SettingsError::Robots);
        }
        Ok(())
    }

    /// These settings with the largest field, players and top scores that
    /// [`GameSettings::validate`] accepts: what the worst frames are sized for.
    pub fn at_largest(self) -> Self {
        Self { width: MAX_SIDE, height: MAX_SIDE, max_players: MAX_PLAYERS, top_scores: MAX_TOP_SCORES, ..self }
    }

    pub fn tick_period(&self) -> std::time::Duration {
        std::time::Duration::from_secs_f64(1.0 / self.tick_rate)
    }
}

impl Default for GameSettings {
    fn default() -> Self {
        Self { tick_rate: 10.0, ..Self::original() }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn presets_are_valid_and_differ_only_in_tick_rate() {
        let o = GameSettings::original();
        let d = GameSettings::default();
        assert_eq!(o.validate(), Ok(()));
        assert_eq!(d.validate(), Ok(()));
        assert_eq!(o.tick_rate, 2.3);
        assert_eq!(d.tick_rate, 10.0);
        assert_eq!(GameSettings { tick_rate: 2.3, ..d }, o);
    }

    #[test]
    fn bad_settings_are_refused() {
        let d = GameSettings::default();
        assert_eq!(GameSettings { tick_rate: 0.0, ..d.clone() }.validate(), Err(SettingsError::TickRate));
        assert_eq!(GameSettings { width: 5, ..d.clone() }.validate(), Err(SettingsError::Field));
        assert_eq!(GameSettings { max_players: 0, ..d.clone() }.validate(), Err(SettingsError::MaxPlayers));
        assert_eq!(GameSettings { initial_length: 0, ..d.clone() }.validate(), Err(SettingsError::InitialLength));
        assert_eq!(GameSettings { digit_spawn_rate: 1.5, ..d.clone() }.validate(), Err(SettingsError::SpawnRate));
        assert_eq!(GameSettings { digit_min: 5, digit_max: 4, ..d.clone() }.validate(), Err(SettingsError::Digits));
        assert_eq!(GameSettings { robots: 11, ..d.clone() }.validate(), Err(SettingsError::Robots));
        assert_eq!(GameSettings { robots: 10, ..d.clone() }.validate(), Ok(()));
        assert_eq!(GameSettings { robots: 3, max_players: 2, ..d.clone() }.validate(), Err(SettingsError::Robots));
    }
}
