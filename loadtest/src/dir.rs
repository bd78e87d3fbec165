//! The four directions a snake can move, and the key codes that ask for them.
//!
//! The wire speaks key codes (a bare JSON number 37..40), the grid speaks
//! (dx, dy) steps; keeping both in one type means the bot never sends a key
//! it did not mean, and the key texts are static so sending a turn allocates
//! nothing.

/// A direction on the field: x grows right, y grows down.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Dir {
    Left,
    Up,
    Right,
    Down,
}

impl Dir {
    pub const ALL: [Dir; 4] = [Dir::Left, Dir::Up, Dir::Right, Dir::Down];

    /// The key code the server expects: 37 left, 38 up, 39 right, 40 down.
    pub fn key(self) -> u8 {
        match self {
            Dir::Left => 37,
            Dir::Up => 38,
            Dir::Right => 39,
            Dir::Down => 40,
        }
    }

    /// The key code as the JSON text of a client message.
    pub fn key_text(self) -> &'static str {
        match self {
            Dir::Left => "37",
            Dir::Up => "38",
            Dir::Right => "39",
            Dir::Down => "40",
        }
    }

    pub fn from_key(key: u8) -> Option<Dir> {
        Dir::ALL.into_iter().find(|d| d.key() == key)
    }

    /// One step in this direction as (dx, dy).
    pub fn delta(self) -> (i32, i32) {
        match self {
            Dir::Left => (-1, 0),
            Dir::Up => (0, -1),
            Dir::Right => (1, 0),
            Dir::Down => (0, 1),
        }
    }

    /// The direction of a single step, if (dx, dy) is one.
    pub fn from_delta(dx: i32, dy: i32) -> Option<Dir> {
        Dir::ALL.into_iter().find(|d| d.delta() == (dx, dy))
    }

    pub fn opposite(self) -> Dir {
        match self {
            Dir::Left => Dir::Right,
            Dir::Up => Dir::Down,
            Dir::Right => Dir::Left,
            Dir::Down => Dir::Up,
        }
    }

    /// The cell one step from (x, y); may be outside the field.
    pub fn step(self, (x, y): (i32, i32)) -> (i32, i32) {
        let (dx, dy) = self.delta();
        (x + dx, y + dy)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_deltas_and_opposites_agree() {
        for d in Dir::ALL {
            assert_eq!(Dir::from_key(d.key()), Some(d));
            assert_eq!(d.key_text(), d.key().to_string());
            let (dx, dy) = d.delta();
            assert_eq!(Dir::from_delta(dx, dy), Some(d));
            assert_eq!(d.opposite().delta(), (-dx, -dy));
            assert_eq!(d.step(d.opposite().step((5, 5))), (5, 5));
        }
        assert_eq!(Dir::from_key(41), None);
        assert_eq!(Dir::from_delta(1, 1), None);
    }
}
