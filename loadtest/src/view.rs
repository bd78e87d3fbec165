//! One bot's copy of its room's field, kept from `world`, `reset_world` and
//! `render` commands.
//!
//! Two flat byte vectors (character and colour per cell) instead of rows of
//! strings: a render is one store, a `world` refills the same buffers, so a
//! bot's view allocates only when the field first arrives. The view knows
//! nothing about which snake is the bot's; it answers questions about cells
//! (is it free, where is a colour's head, which way does a head face).

use crate::dir::Dir;

/// A cell position that is inside the field.
pub type Pos = (u16, u16);

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct View {
    width: u16,
    height: u16,
    chars: Vec<u8>,
    colours: Vec<u8>,
}

/// Whether a snake may move into a cell holding `ch`: empty or a digit.
pub fn passable(ch: u8) -> bool {
    ch == b' ' || ch.is_ascii_digit()
}

impl View {
    /// A view from text rows (tests and tools): every cell in colour 0.
    pub fn from_rows(rows: &[&str]) -> View {
        let mut v = View::default();
        v.begin_world();
        for row in rows {
            for &ch in row.as_bytes() {
                v.chars.push(ch);
                v.colours.push(0);
            }
        }
        let width = rows.first().map_or(0, |r| r.len());
        v.end_world(u16::try_from(width).unwrap_or(0), u16::try_from(rows.len()).unwrap_or(0));
        v
    }

    pub fn width(&self) -> u16 {
        self.width
    }

    pub fn height(&self) -> u16 {
        self.height
    }

    /// Whether a field has arrived (a view without one has no cells).
    pub fn is_known(&self) -> bool {
        self.width > 0 && self.height > 0
    }

    /// A new `world` starts: the old field is dropped, its buffers kept.
    pub fn begin_world(&mut self) {
        self.width = 0;
        self.height = 0;
        self.chars.clear();
        self.colours.clear();
    }

    /// The next cell of a `world`, in row order.
    pub fn push_cell(&mut self, ch: u8, colour: u8) {
        self.chars.push(ch);
        self.colours.push(colour);
    }

    /// The `world` is complete; a grid that does not add up stays unknown.
    pub fn end_world(&mut self, width: u16, height: u16) {
        if usize::from(width) * usize::from(height) == self.chars.len() {
            self.width = width;
            self.height = height;
        } else {
            self.begin_world();
        }
    }

    /// `reset_world`: every cell empty.
    pub fn reset(&mut self) {
        self.chars.fill(b' ');
        self.colours.fill(0);
    }

    /// `render`: one cell changes (ignored outside the field).
    pub fn set(&mut self, x: u16, y: u16, ch: u8, colour: u8) {
        if let Some(i) = self.index(i32::from(x), i32::from(y)) {
            self.chars[i] = ch;
            self.colours[i] = colour;
        }
    }

    fn index(&self, x: i32, y: i32) -> Option<usize> {
        let inside = x >= 0 && y >= 0 && x < i32::from(self.width) && y < i32::from(self.height);
        inside.then(|| y as usize * usize::from(self.width) + x as usize)
    }

    /// Character and colour at (x, y); `None` outside the field.
    pub fn get(&self, x: i32, y: i32) -> Option<(u8, u8)> {
        self.index(x, y).map(|i| (self.chars[i], self.colours[i]))
    }

    /// The character at (x, y); `None` outside the field.
    pub fn char_at(&self, x: i32, y: i32) -> Option<u8> {
        self.index(x, y).map(|i| self.chars[i])
    }

    /// Whether a snake can move into (x, y) and live: inside, empty or a digit.
    pub fn is_free(&self, x: i32, y: i32) -> bool {
        self.char_at(x, y).is_some_and(passable)
    }

    /// Whether (x, y) is the head `%` of a snake in `colour`.
    pub fn is_head(&self, pos: Pos, colour: u8) -> bool {
        self.get(i32::from(pos.0), i32::from(pos.1)) == Some((b'%', colour))
    }

    /// The head `%` of the snake in `colour`, by scanning the field.
    pub fn find_head(&self, colour: u8) -> Option<Pos> {
        let i = self.chars.iter().zip(&self.colours).position(|(&ch, &c)| ch == b'%' && c == colour)?;
        let w = usize::from(self.width);
        Some(((i % w) as u16, (i / w) as u16))
    }

    /// The head `%` in `colour` nearest to `from` (Manhattan distance).
    pub fn nearest_head(&self, colour: u8, from: Pos) -> Option<Pos> {
        self.heads(colour)
            .min_by_key(|&(x, y)| (i32::from(x) - i32::from(from.0)).abs() + (i32::from(y) - i32::from(from.1)).abs())
    }

    /// The head `%` in `colour` if there is exactly one.
    pub fn only_head(&self, colour: u8) -> Option<Pos> {
        let mut heads = self.heads(colour);
        let first = heads.next()?;
        heads.next().is_none().then_some(first)
    }

    fn heads(&self, colour: u8) -> impl Iterator<Item = Pos> + '_ {
        let w = usize::from(self.width).max(1);
        self.chars
            .iter()
            .zip(&self.colours)
            .enumerate()
            .filter(move |&(_, (&ch, &c))| ch == b'%' && c == colour)
            .map(move |(i, _)| ((i % w) as u16, (i / w) as u16))
    }

    /// The way the head at `head` faces, from its neck: the `@` or `*` of
    /// the same colour next to it (the snake moved from there). If several
    /// cells could be the neck (a coiled snake), `hint` breaks the tie.
    pub fn facing(&self, head: Pos, colour: u8, hint: Option<Dir>) -> Option<Dir> {
        let (x, y) = (i32::from(head.0), i32::from(head.1));
        let mut found = None;
        for d in Dir::ALL {
            // The neck lies behind the head: one step against the direction.
            let (nx, ny) = d.opposite().step((x, y));
            if matches!(self.get(nx, ny), Some((b'@' | b'*', c)) if c == colour) {
                if Some(d) == hint {
                    return Some(d);
                }
                found.get_or_insert(d);
            }
        }
        found
    }

    /// The length in cells of the snake whose head `%` is at `head`: the
    /// chain of `@` cells of its colour from the head to the `*` tail.
    /// `None` where the chain is not clear (two cells could come next: a
    /// coiled snake or another of the colour touching it) or not there.
    pub fn body_len(&self, head: Pos, colour: u8) -> Option<u32> {
        if !self.is_head(head, colour) {
            return None;
        }
        let mut seen = vec![head];
        let mut at = head;
        loop {
            let mut next = None;
            for d in Dir::ALL {
                let (x, y) = d.step((i32::from(at.0), i32::from(at.1)));
                let Some((ch @ (b'@' | b'*'), c)) = self.get(x, y) else { continue };
                let p = (x as u16, y as u16);
                if c != colour || seen.contains(&p) {
                    continue;
                }
                if next.is_some() {
                    return None;
                }
                next = Some((p, ch));
            }
            let (p, ch) = next?;
            seen.push(p);
            if ch == b'*' {
                return u32::try_from(seen.len()).ok();
            }
            if seen.len() > self.chars.len() {
                return None;
            }
            at = p;
        }
    }

    /// The digit nearest to `from` (Manhattan distance), if any.
    pub fn nearest_digit(&self, from: Pos) -> Option<Pos> {
        let w = usize::from(self.width);
        if w == 0 {
            return None;
        }
        let (fx, fy) = (i32::from(from.0), i32::from(from.1));
        self.chars
            .iter()
            .enumerate()
            .filter(|(_, ch)| ch.is_ascii_digit())
            .map(|(i, _)| ((i % w) as u16, (i / w) as u16))
            .min_by_key(|&(x, y)| (i32::from(x) - fx).abs() + (i32::from(y) - fy).abs())
    }

    /// The field as text rows (for test failure messages).
    pub fn rows(&self) -> Vec<String> {
        if !self.is_known() {
            return Vec::new();
        }
        self.chars.chunks(usize::from(self.width)).map(|r| String::from_utf8_lossy(r).into_owned()).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cells_inside_and_outside() {
        let v = View::from_rows(&["#  ", " 5@"]);
        assert_eq!((v.width(), v.height()), (3, 2));
        assert_eq!(v.char_at(0, 0), Some(b'#'));
        assert!(!v.is_free(0, 0));
        assert!(v.is_free(1, 1));
        assert!(v.is_free(2, 0));
        assert!(!v.is_free(2, 1));
        assert!(!v.is_free(-1, 0));
        assert!(!v.is_free(3, 0));
        assert!(!v.is_free(0, 2));
        assert_eq!(v.nearest_digit((0, 0)), Some((1, 1)));
    }

    #[test]
    fn a_world_that_does_not_add_up_stays_unknown() {
        let mut v = View::default();
        v.begin_world();
        v.push_cell(b' ', 0);
        v.end_world(2, 1);
        assert!(!v.is_known());
        v.set(0, 0, b'#', 0);
        assert_eq!(v.get(0, 0), None);
    }

    #[test]
    fn head_and_facing_from_the_neck() {
        let mut v = View::from_rows(&["     ", " *@% ", "     "]);
        for x in 1..4 {
            v.set(x, 1, v.char_at(i32::from(x), 1).unwrap(), 2);
        }
        assert_eq!(v.find_head(2), Some((3, 1)));
        assert_eq!(v.find_head(3), None);
        assert_eq!(v.only_head(2), Some((3, 1)));
        v.set(0, 0, b'%', 2);
        assert_eq!(v.only_head(2), None);
        assert_eq!(v.nearest_head(2, (4, 2)), Some((3, 1)));
        assert_eq!(v.nearest_head(2, (0, 1)), Some((0, 0)));
        v.set(0, 0, b' ', 0);
        assert_eq!(v.facing((3, 1), 2, None), Some(Dir::Right));
        // a coiled snake: two body cells touch the head; the hint decides
        v.set(3, 2, b'@', 2);
        assert_eq!(v.facing((3, 1), 2, Some(Dir::Up)), Some(Dir::Up));
        assert_eq!(v.facing((3, 1), 2, Some(Dir::Right)), Some(Dir::Right));
        v.reset();
        assert_eq!(v.find_head(2), None);
        assert!(v.is_free(3, 1));
    }

    #[test]
    fn body_length_follows_the_chain_to_the_tail() {
        let paint = |rows: &[&str], colour: u8| {
            let mut v = View::from_rows(rows);
            for y in 0..v.height() {
                for x in 0..v.width() {
                    let ch = v.char_at(i32::from(x), i32::from(y)).unwrap();
                    if ch != b' ' {
                        v.set(x, y, ch, colour);
                    }
                }
            }
            v
        };
        // a bent snake of 6
        let v = paint(&["*@@  ", "  @  ", "  @% ", "     "], 2);
        assert_eq!(v.body_len((3, 2), 2), Some(6));
        assert_eq!(v.body_len((3, 2), 3), None, "another colour");
        assert_eq!(v.body_len((2, 2), 2), None, "not a head");
        // a newborn: tail, body, head
        assert_eq!(paint(&["*@%"], 1).body_len((2, 0), 1), Some(3));
        // two ways on from the head: unclear
        assert_eq!(paint(&[" @ ", "@%*"], 1).body_len((1, 1), 1), None);
        // no tail at the end of the chain
        assert_eq!(paint(&["@@%"], 1).body_len((2, 0), 1), None);
    }
}
