//! The field: a grid of cells, each a character and a colour.

use serde::{Deserialize, Serialize};

pub use self::packed_cells::encoded_as;

pub const EMPTY: u8 = b' ';
pub const STONE: u8 = b'#';
pub const HEAD: u8 = b'%';
pub const BODY: u8 = b'@';
pub const TAIL: u8 = b'*';
pub const DEAD_HEAD: u8 = b'x';
pub const DEAD_TAIL: u8 = b'+';

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cell {
    pub ch: u8,
    pub colour: u8,
}

impl Cell {
    pub const EMPTY: Cell = Cell { ch: EMPTY, colour: 0 };

    pub fn is_empty(self) -> bool {
        self.ch == EMPTY
    }

    /// The digit's value, if the cell holds one.
    pub fn digit(self) -> Option<u8> {
        self.ch.is_ascii_digit().then(|| self.ch - b'0').filter(|d| *d > 0)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Pos {
    pub x: u16,
    pub y: u16,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Grid {
    width: u16,
    height: u16,
    #[serde(with = "packed_cells")]
    cells: Vec<Cell>,
}

/// The cells in a snapshot: one byte string, character and colour of each
/// cell in turn. A room snapshots itself every second, and cell by cell
/// (an array of two numbers each) its 1,250 cells were a quarter of a
/// worker's time. Both forms are read; which is written is chosen per
/// encoding ([`encoded_as`]), since workers of earlier releases read only
/// cells one by one.
mod packed_cells {
    use std::fmt;

    use serde::de::{self, SeqAccess, Visitor};
    use serde::{Deserialize, Deserializer, Serializer};

    use super::Cell;

    thread_local! {
        static PACKED: std::cell::Cell<bool> = const { std::cell::Cell::new(true) };
    }

    /// Runs `encode` with the cells of every grid it writes packed, or
    /// cell by cell (as releases before read them). Encoding is
    /// synchronous: the choice holds for exactly that call.
    pub fn encoded_as<T>(packed: bool, encode: impl FnOnce() -> T) -> T {
        let before = PACKED.replace(packed);
        let out = encode();
        PACKED.set(before);
        out
    }

    pub fn serialize<S: Serializer>(cells: &[Cell], s: S) -> Result<S::Ok, S::Error> {
        if !PACKED.get() {
            return s.collect_seq(cells);
        }
        let bytes: Vec<u8> = cells.iter().flat_map(|c| [c.ch, c.colour]).collect();
        s.serialize_bytes(&bytes)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<Cell>, D::Error> {
        d.deserialize_any(CellsVisitor)
    }

    struct CellsVisitor;

    impl<'de> Visitor<'de> for CellsVisitor {
        type Value = Vec<Cell>;

        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("the cells as bytes (character, colour) or as a sequence of cells")
        }

        fn visit_bytes<E: de::Error>(self, bytes: &[u8]) -> Result<Vec<Cell>, E> {
            if !bytes.len().is_multiple_of(2) {
                return Err(E::invalid_length(bytes.len(), &"two bytes per cell"));
            }
            Ok(bytes.chunks_exact(2).map(|c| Cell { ch: c[0], colour: c[1] }).collect())
        }

        /// A sequence: of cells (a snapshot written before the cells were
        /// packed), or of the packed bytes (a format without byte strings,
        /// JSON).
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<Cell>, A::Error> {
            #[derive(Deserialize)]
            #[serde(untagged)]
            enum Item {
                Byte(u8),
                Cell(Cell),
            }
            // Bounded by the snapshot's own size, which the store bounds.
            let mut cells = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(1 << 16));
            let mut bytes = Vec::new();
            while let Some(item) = seq.next_element::<Item>()? {
                match item {
                    Item::Cell(cell) => cells.push(cell),
                    Item::Byte(b) => bytes.push(b),
                }
            }
            match (cells.is_empty(), bytes.is_empty()) {
                (_, true) => Ok(cells),
                (true, false) => self.visit_bytes(&bytes),
                (false, false) => Err(de::Error::custom("cells and bytes mixed")),
            }
        }
    }
}

impl Grid {
    pub fn new(width: u16, height: u16) -> Self {
        Self { width, height, cells: vec![Cell::EMPTY; usize::from(width) * usize::from(height)] }
    }

    pub fn width(&self) -> u16 {
        self.width
    }

    pub fn height(&self) -> u16 {
        self.height
    }

    fn index(&self, p: Pos) -> usize {
        usize::from(p.y) * usize::from(self.width) + usize::from(p.x)
    }

    pub fn get(&self, p: Pos) -> Cell {
        self.cells[self.index(p)]
    }

    pub fn set(&mut self, p: Pos, cell: Cell) {
        let i = self.index(p);
        self.cells[i] = cell;
    }

    /// The cell one step from `p` by `(dx, dy)`, if it is inside the field.
    pub fn step(&self, p: Pos, (dx, dy): (i32, i32)) -> Option<Pos> {
        let x = i32::from(p.x) + dx;
        let y = i32::from(p.y) + dy;
        if x < 0 || y < 0 || x >= i32::from(self.width) || y >= i32::from(self.height) {
            return None;
        }
        Some(Pos { x: x as u16, y: y as u16 })
    }

    /// Exactly one cell per place (a grid read from outside may not be).
    pub fn is_whole(&self) -> bool {
        self.cells.len() == usize::from(self.width) * usize::from(self.height)
    }

    pub fn clear(&mut self) {
        self.cells.fill(Cell::EMPTY);
    }

    pub fn cells(&self) -> impl Iterator<Item = (Pos, Cell)> + '_ {
        let w = usize::from(self.width);
        self.cells.iter().enumerate().map(move |(i, c)| (Pos { x: (i % w) as u16, y: (i / w) as u16 }, *c))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use serde::{Deserialize, Serialize};

    use super::*;

    fn sample() -> Grid {
        let mut g = Grid::new(50, 25);
        g.set(Pos { x: 3, y: 4 }, Cell { ch: HEAD, colour: 2 });
        g.set(Pos { x: 49, y: 24 }, Cell { ch: b'7', colour: 0 });
        g
    }

    /// The cells go out as one byte string, two bytes a cell, and come back.
    #[test]
    fn cells_are_packed_and_read_back() {
        let g = sample();
        let bytes = rmp_serde::to_vec(&g).unwrap();
        assert!(bytes.len() < 50 * 25 * 2 + 16, "{} bytes", bytes.len());
        assert_eq!(rmp_serde::from_slice::<Grid>(&bytes).unwrap(), g);
    }

    /// A snapshot written before, cell by cell, still reads.
    #[test]
    fn a_grid_written_cell_by_cell_still_reads() {
        #[derive(Serialize)]
        struct Before<'a> {
            width: u16,
            height: u16,
            cells: &'a [Cell],
        }
        let g = sample();
        let before = rmp_serde::to_vec(&Before { width: g.width, height: g.height, cells: &g.cells }).unwrap();
        assert_eq!(rmp_serde::from_slice::<Grid>(&before).unwrap(), g);
    }

    /// Asked for, the cells go out one by one, as releases before the
    /// packing wrote (and read) them.
    #[test]
    fn cells_go_out_one_by_one_when_asked() {
        #[derive(Deserialize, PartialEq, Debug)]
        struct Before {
            width: u16,
            height: u16,
            cells: Vec<Cell>,
        }
        let g = sample();
        let bytes = encoded_as(false, || rmp_serde::to_vec(&g).unwrap());
        let before: Before = rmp_serde::from_slice(&bytes).unwrap();
        assert_eq!(before.cells, g.cells);
        assert_eq!(rmp_serde::from_slice::<Grid>(&bytes).unwrap(), g);
        // The choice held for that call only.
        assert!(rmp_serde::from_slice::<Before>(&rmp_serde::to_vec(&g).unwrap()).is_err());
    }

    /// A format without byte strings (JSON) has the bytes as numbers.
    #[test]
    fn cells_read_back_from_json() {
        let g = sample();
        assert_eq!(serde_json::from_value::<Grid>(serde_json::to_value(&g).unwrap()).unwrap(), g);
    }

    /// An odd byte string is refused, not read as a shorter grid.
    #[test]
    fn an_odd_byte_string_is_refused() {
        #[derive(Serialize)]
        struct Odd {
            width: u16,
            height: u16,
            #[serde(with = "serde_bytes_like")]
            cells: Vec<u8>,
        }
        mod serde_bytes_like {
            pub fn serialize<S: serde::Serializer>(b: &[u8], s: S) -> Result<S::Ok, S::Error> {
                s.serialize_bytes(b)
            }
        }
        let odd = rmp_serde::to_vec(&Odd { width: 1, height: 1, cells: vec![b' ', 0, 1] }).unwrap();
        assert!(rmp_serde::from_slice::<Grid>(&odd).is_err());
    }
}
