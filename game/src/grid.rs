//! The field: a grid of cells, each a character and a colour.

use serde::{Deserialize, Serialize};

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
    cells: Vec<Cell>,
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
