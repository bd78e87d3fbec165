//! Turning a room's events into client frames. A tick frame is encoded once
//! and the same bytes go to every member.

use bytes::Bytes;
use snakepit_shared::encode::FrameWriter;

use crate::game::{Event, Game};

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
