//! The world as a client of the original protocol keeps it: frames applied
//! in order, command by command, as the browser client does. One model for
//! every test that checks what a client would see (the game's property
//! tests, the gateway's tests over sockets); the load tester keeps its own
//! on purpose, as a client written from the outside.
//!
//! It is strict where the browser is lenient: a command of the wrong shape
//! is an error here, so a test notices a frame the client would misread.

use std::collections::HashMap;

use serde_json::Value;

/// One cell: its character and its colour.
pub type Cell = (String, u64);

/// What a client knows: the field, the last tick, and each player's colour,
/// life and score (by integer id).
#[derive(Default, Clone, Debug, PartialEq)]
pub struct ClientWorld {
    /// Rows of cells, `grid[y][x]`.
    pub grid: Vec<Vec<Cell>>,
    pub tick: u64,
    pub colours: HashMap<i64, u64>,
    pub alive: HashMap<i64, bool>,
    pub scores: HashMap<i64, u64>,
}

/// Why a frame could not be applied.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct FrameError(String);

fn bad(what: &str, command: &Value) -> FrameError {
    FrameError(format!("{what}: {command}"))
}

fn uint(command: &Value, i: usize) -> Result<u64, FrameError> {
    command.get(i).and_then(Value::as_u64).ok_or_else(|| bad(&format!("argument {i} is no unsigned integer"), command))
}

fn int(command: &Value, i: usize) -> Result<i64, FrameError> {
    command.get(i).and_then(Value::as_i64).ok_or_else(|| bad(&format!("argument {i} is no integer"), command))
}

fn text(command: &Value, i: usize) -> Result<&str, FrameError> {
    command.get(i).and_then(Value::as_str).ok_or_else(|| bad(&format!("argument {i} is no string"), command))
}

/// One cell of a `world` or `render` command: exactly one character.
fn cell(ch: &str, colour: u64, command: &Value) -> Result<Cell, FrameError> {
    if ch.chars().count() != 1 {
        return Err(bad("a cell holds one character", command));
    }
    Ok((ch.to_owned(), colour))
}

/// The commands of a frame (a JSON array of `[name, args...]`).
pub fn commands(frame: &[u8]) -> Result<Vec<Value>, FrameError> {
    match serde_json::from_slice(frame) {
        Ok(Value::Array(commands)) => Ok(commands),
        Ok(other) => Err(bad("a frame is an array of commands", &other)),
        Err(e) => Err(FrameError(format!("a frame is JSON: {e}"))),
    }
}

/// A command's name.
pub fn name(command: &Value) -> &str {
    command.get(0).and_then(Value::as_str).unwrap_or_default()
}

impl ClientWorld {
    /// A world of these rows (a test's picture of what the client should
    /// hold).
    pub fn with_grid(grid: Vec<Vec<Cell>>) -> Self {
        Self { grid, ..Self::default() }
    }

    /// Applies one frame's bytes.
    pub fn apply_frame(&mut self, frame: &[u8]) -> Result<(), FrameError> {
        self.apply(&commands(frame)?)
    }

    /// Applies a frame's commands in order; commands that change no world
    /// (`handshake`, `top_scores`, `error`...) are passed over.
    pub fn apply(&mut self, commands: &[Value]) -> Result<(), FrameError> {
        for c in commands {
            match name(c) {
                "tick" => self.tick = uint(c, 1)?,
                "world" => self.world(c)?,
                "reset_world" => {
                    for row in &mut self.grid {
                        row.fill((" ".to_owned(), 0));
                    }
                }
                "render" => {
                    let (x, y) = (uint(c, 1)? as usize, uint(c, 2)? as usize);
                    let new = cell(text(c, 3)?, uint(c, 4)?, c)?;
                    let slot = self.grid.get_mut(y).and_then(|row| row.get_mut(x));
                    *slot.ok_or_else(|| bad("render outside the world", c))? = new;
                }
                "p_joined" => {
                    let id = int(c, 1)?;
                    self.colours.insert(id, uint(c, 3)?);
                    self.alive.insert(id, true);
                    self.scores.insert(id, uint(c, 4)?);
                }
                "p_gameover" => {
                    self.alive.insert(int(c, 1)?, false);
                }
                "p_score" => {
                    self.scores.insert(int(c, 1)?, uint(c, 2)?);
                }
                _ => {}
            }
        }
        Ok(())
    }

    fn world(&mut self, c: &Value) -> Result<(), FrameError> {
        let rows = c.get(1).and_then(Value::as_array).ok_or_else(|| bad("a world is an array of rows", c))?;
        let mut grid = Vec::with_capacity(rows.len());
        for row in rows {
            let row = row.as_array().ok_or_else(|| bad("a row is an array of cells", c))?;
            let mut cells = Vec::with_capacity(row.len());
            for pair in row {
                let ch = pair.get(0).and_then(Value::as_str).ok_or_else(|| bad("a cell is [char, colour]", c))?;
                let colour = pair.get(1).and_then(Value::as_u64).ok_or_else(|| bad("a cell is [char, colour]", c))?;
                cells.push(cell(ch, colour, c)?);
            }
            grid.push(cells);
        }
        if grid.iter().any(|row| row.len() != grid[0].len()) {
            return Err(bad("rows of one length", c));
        }
        self.grid = grid;
        Ok(())
    }

    fn alive_colour(&self, id: i64) -> Option<u64> {
        self.colours.get(&id).copied().filter(|_| self.alive.get(&id).copied().unwrap_or(false))
    }

    /// The head (`%` in the player's colour) of an alive snake. Colours
    /// repeat (six of them), so with two snakes of one colour this is the
    /// first head of that colour.
    pub fn head(&self, id: i64) -> Option<(usize, usize)> {
        let colour = self.alive_colour(id)?;
        self.cells().find(|(_, (ch, c))| ch == "%" && *c == colour).map(|(p, _)| p)
    }

    /// The cells of an alive snake (head, body and tail in its colour),
    /// in reading order.
    pub fn snake_cells(&self, id: i64) -> Vec<(usize, usize)> {
        let Some(colour) = self.alive_colour(id) else { return Vec::new() };
        self.cells()
            .filter(|(_, (ch, c))| *c == colour && matches!(ch.as_str(), "%" | "@" | "*"))
            .map(|(p, _)| p)
            .collect()
    }

    /// Where a snake heads, as (dx, dy): away from its neck (the body or
    /// tail cell beside the head).
    pub fn direction(&self, id: i64) -> Option<(i64, i64)> {
        let (x, y) = self.head(id)?;
        let colour = self.alive_colour(id)?;
        [(-1i64, 0i64), (1, 0), (0, -1), (0, 1)].into_iter().find(|(dx, dy)| {
            self.at(x as i64 - dx, y as i64 - dy).is_some_and(|(ch, c)| (ch == "@" || ch == "*") && *c == colour)
        })
    }

    /// The cell at (x, y), if inside the world.
    pub fn at(&self, x: i64, y: i64) -> Option<&Cell> {
        let (x, y) = (usize::try_from(x).ok()?, usize::try_from(y).ok()?);
        self.grid.get(y)?.get(x)
    }

    /// A cell a snake may move into: empty or a digit.
    pub fn free(&self, x: i64, y: i64) -> bool {
        self.at(x, y).is_some_and(|(ch, _)| ch == " " || ch.chars().all(|c| c.is_ascii_digit()))
    }

    fn cells(&self) -> impl Iterator<Item = ((usize, usize), &Cell)> {
        self.grid.iter().enumerate().flat_map(|(y, row)| row.iter().enumerate().map(move |(x, c)| ((x, y), c)))
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn frame(v: Value) -> Vec<u8> {
        serde_json::to_vec(&v).unwrap_or_default()
    }

    #[test]
    fn a_world_then_renders_and_players_make_the_clients_picture() {
        let mut w = ClientWorld::default();
        let world = json!([["tick", 3], ["world", [[[" ", 0], [" ", 0], [" ", 0]], [[" ", 0], [" ", 0], [" ", 0]]]]]);
        w.apply_frame(&frame(world)).unwrap();
        let tick = json!([
            ["tick", 4],
            ["p_joined", 7, "ann", 2, 0],
            ["render", 0, 1, "*", 2],
            ["render", 1, 1, "%", 2],
            ["render", 2, 0, "5", 0],
            ["p_score", 7, 5]
        ]);
        w.apply_frame(&frame(tick)).unwrap();
        assert_eq!(w.tick, 4);
        assert_eq!(w.head(7), Some((1, 1)));
        assert_eq!(w.direction(7), Some((1, 0)));
        assert_eq!(w.snake_cells(7), vec![(0, 1), (1, 1)]);
        assert_eq!(w.scores[&7], 5);
        assert!(w.free(2, 0) && w.free(2, 1) && !w.free(3, 1) && !w.free(0, 1));
        w.apply(&[json!(["p_gameover", 7]), json!(["reset_world"])]).unwrap();
        assert_eq!(w.head(7), None);
        assert!(w.grid.iter().flatten().all(|c| c == &(" ".to_owned(), 0)));
    }

    #[test]
    fn a_frame_the_client_would_misread_is_an_error() {
        let mut w = ClientWorld::with_grid(vec![vec![(" ".to_owned(), 0); 2]; 2]);
        assert!(w.apply(&[json!(["render", 5, 0, "%", 1])]).is_err(), "outside the world");
        assert!(w.apply(&[json!(["render", 0, 0, "%%", 1])]).is_err(), "two characters");
        assert!(w.apply(&[json!(["p_joined", "7", "ann", 2, 0])]).is_err(), "a string id");
        assert!(w.apply(&[json!(["world", [[[" ", 0]], []]])]).is_err(), "ragged rows");
        assert!(w.apply_frame(b"{}").is_err(), "not an array");
    }
}
