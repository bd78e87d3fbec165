//! Turning a room's events into client frames. A tick frame is encoded once
//! and the same bytes go to every member.

use bytes::Bytes;
use snakepit_protocol::frame_writer::FrameWriter;

use crate::game::{Event, Game};
use crate::settings::{MAX_PLAYERS, MAX_SIDE, MAX_TOP_SCORES};

/// The largest welcome any valid settings can produce: a gateway's socket
/// must be able to hold it whole (its write buffer is sized from this).
pub const MAX_WELCOME_LEN: usize = welcome_bound(MAX_SIDE, MAX_SIDE, MAX_PLAYERS, MAX_TOP_SCORES);

/// An upper bound of [`encode_welcome`]'s size, worst case: every cell
/// filled with an escaped char (`["\"",255],`), every player alive and every
/// name 15 four-byte characters, scores and the tick at 20 digits.
pub const fn welcome_bound(width: u16, height: u16, players: u16, top_scores: usize) -> usize {
    const CELL: usize = 11;
    /// `[`, `]` and a comma around each row.
    const ROW: usize = 3;
    /// A `p_joined` command or a top score: `,["p_joined","<uuid>",` is 54
    /// bytes, a name at most 62, colour and score 25.
    const ENTRY: usize = 160;
    /// The frame's brackets, `tick`, `world` and `top_scores` around it all.
    const FIXED: usize = 128;
    let (width, height, players) = (width as usize, height as usize, players as usize);
    FIXED + height * (ROW + width * CELL) + (players + top_scores) * ENTRY
}

/// One tick's frame: `["tick", n]` then the tick's changes in order.
pub fn encode_tick(w: &mut FrameWriter, game: &Game) -> Bytes {
    w.tick(game.tick());
    write_events(w, game);
    w.take()
}

/// Events as commands; `TopScores` writes the game's current list.
pub fn write_events(w: &mut FrameWriter, game: &Game) {
    for e in game.events() {
        match e {
            Event::Render { pos, cell } => w.render(pos.x, pos.y, cell.ch, cell.colour),
            Event::Joined { id, name, colour, score } => w.p_joined(*id, name, *colour, *score),
            Event::GameOver(id) => w.p_gameover(*id),
            Event::Score { id, score } => w.p_score(*id, *score),
            Event::TopScores => w.top_scores(game.top_scores()),
            Event::ResetWorld => w.reset_world(),
        }
    }
}

/// What a member gets on entering: the tick, the world, every alive snake,
/// the top scores. Later tick frames apply on top of it.
pub fn encode_welcome(game: &Game) -> Bytes {
    let grid = game.grid();
    let mut w = FrameWriter::with_capacity(usize::from(grid.width()) * usize::from(grid.height()) * 9 + 512);
    w.tick(game.tick());
    w.world(grid.width(), grid.height(), |x, y| {
        let c = grid.get(crate::grid::Pos { x, y });
        (c.ch, c.colour)
    });
    for p in game.players().iter().filter(|p| p.alive) {
        w.p_joined(p.id, &p.name, p.colour, p.score);
    }
    w.top_scores(game.top_scores());
    w.finish()
}

#[cfg(test)]
mod tests {
    use snakepit_protocol::{PlayerId, ScoreEntry};

    use super::*;
    use crate::grid::{Cell, Pos};
    use crate::settings::GameSettings;

    /// Fifteen characters of four bytes each: the longest name in bytes.
    fn longest_name() -> String {
        "\u{1F40D}".repeat(15)
    }

    #[test]
    fn the_worst_welcome_of_the_largest_settings_fits_the_bound() {
        let settings = GameSettings::default().at_largest();
        assert_eq!(settings.validate(), Ok(()));
        let mut game = Game::new(settings, 7);
        for _ in 0..MAX_PLAYERS {
            let id = PlayerId::random();
            game.add_player(id, longest_name());
            game.join(id).unwrap();
        }
        assert_eq!(game.alive_count(), usize::from(MAX_PLAYERS));
        for y in 0..MAX_SIDE {
            for x in 0..MAX_SIDE {
                game.put(Pos { x, y }, Cell { ch: b'"', colour: u8::MAX });
            }
        }
        let top = (0..MAX_TOP_SCORES).map(|_| ScoreEntry { name: longest_name(), score: u64::MAX, colour: u8::MAX });
        game.set_top_scores(top.collect());
        let welcome = encode_welcome(&game);
        assert!(welcome.len() <= MAX_WELCOME_LEN, "{} > {MAX_WELCOME_LEN}", welcome.len());
        // And the bound is not wildly above the real thing.
        assert!(welcome.len() * 10 >= MAX_WELCOME_LEN * 9, "{} vs {MAX_WELCOME_LEN}", welcome.len());
    }
}
