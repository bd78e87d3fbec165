//! Which snake on the field is the bot's own.
//!
//! The protocol never says where a player's snake is: `p_joined` gives its
//! colour, and the head is the `%` in that colour. But a room seats 10 and
//! there are 6 colours, so colours are shared and "the `%` in my colour" is
//! often two snakes. Steering the wrong one kills the bot's own, so the
//! tracker identifies the snake at its birth and then follows it:
//!
//! - A birth is drawn as consecutive renders tail, body, head in a line, in
//!   one colour. Snakes are born in join order, so the tracker queues the
//!   `p_joined` it sees (id and colour) and gives each birth to the oldest
//!   queued player of that colour; the bot's own entry marks its birth.
//! - After that, the head moves one cell per tick: the new head is the `%`
//!   of its colour rendered next to the old head.
//! - After a `world` (resynchronisation) the nearest head of its colour to
//!   where it was is taken; with no earlier position, only a head that is the
//!   only one of its colour.
//!
//! Births can still be mistaken: a snake whose birth failed for lack of room
//! is born a tick later, out of join order. The bot then follows another
//! snake of its colour until that one dies under another id; it is counted
//! as lost and picks its snake up again once its head is the only one of
//! the colour. (About one life in a thousand in a crowded 2000-bot run.)

use crate::dir::Dir;
use crate::view::{Pos, View};

/// Queued joins older than this many ticks without a birth are dropped.
pub const BIRTH_WAIT_TICKS: u64 = 30;
/// Most queued joins kept (a room seats far fewer).
const QUEUE_MAX: usize = 32;

/// A short hash of a player id (ids are compared often, stored as numbers).
pub fn id_hash(raw: &[u8]) -> u64 {
    // FNV-1a
    raw.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3))
}

/// What a frame did to the bot's snake.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Not alive.
    Dead,
    /// Joined, not born yet.
    Unborn,
    /// Born in this frame, facing this way.
    Born(Dir),
    /// Moved one cell this way.
    Moved(Dir),
    /// In the same place (a frame without a step).
    Still,
    /// Found again after a `world`.
    Found,
    /// Alive, and just lost from view (it was known before this frame).
    Lost,
    /// Alive and still not to be found.
    Unknown,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Render {
    pos: Pos,
    ch: u8,
    colour: u8,
}

#[derive(Debug, Default)]
pub struct Tracker {
    me: Option<u64>,
    colour: Option<u8>,
    alive: bool,
    unborn_since: Option<u64>,
    head: Option<Pos>,
    facing: Option<Dir>,
    /// Joins without a birth yet: id hash, colour, tick of the join.
    queue: Vec<(u64, u8, u64)>,
    /// The last two renders of this frame.
    recent: [Option<Render>; 2],
    birth: Option<(Pos, Dir)>,
    /// `%` renders in our colour next to our head: position and step.
    steps: [Option<(Pos, Dir)>; 3],
    /// A turn the bot expects to see (preferred among several steps).
    expect: Option<Dir>,
    /// Where the head was before the connection dropped (for a resume).
    hint: Option<Pos>,
}

fn adjacent_step(from: Pos, to: Pos) -> Option<Dir> {
    Dir::from_delta(i32::from(to.0) - i32::from(from.0), i32::from(to.1) - i32::from(from.1))
}

impl Tracker {
    pub fn new() -> Tracker {
        Tracker::default()
    }

    /// The bot's player id (from `handshake`).
    pub fn set_me(&mut self, raw_id: &[u8]) {
        self.me = Some(id_hash(raw_id));
    }

    pub fn is_me(&self, raw_id: &[u8]) -> bool {
        self.me == Some(id_hash(raw_id))
    }

    pub fn alive(&self) -> bool {
        self.alive
    }

    pub fn colour(&self) -> Option<u8> {
        self.colour.filter(|_| self.alive)
    }

    /// A resume: the snake, if it lives on, had its head at `head`.
    pub fn resume_at(&mut self, head: Option<Pos>) {
        self.hint = head;
    }

    /// The head, once known (its facing may not be).
    pub fn head(&self) -> Option<Pos> {
        self.head.filter(|_| self.alive)
    }

    /// The head and the way it faces, once known.
    pub fn snake(&self) -> Option<(Pos, Dir)> {
        self.head.zip(self.facing).filter(|_| self.alive)
    }

    /// Before a frame's commands: `expect` is a turn the bot waits to see.
    pub fn begin_frame(&mut self, expect: Option<Dir>) {
        self.recent = [None; 2];
        self.birth = None;
        self.steps = [None; 3];
        self.expect = expect;
    }

    /// `p_joined`: `welcome` if it came with a `world` (that snake may have
    /// been born already, so it is not queued). True if it is the bot.
    pub fn joined(&mut self, raw_id: &[u8], colour: u8, welcome: bool, tick: u64) -> bool {
        let hash = id_hash(raw_id);
        let me = self.me == Some(hash);
        if me && welcome {
            // A resynchronisation lists the bot's living snake again; after
            // a resume it is a snake that lives on, not a birth.
            self.colour = Some(colour);
            if !self.alive {
                self.alive = true;
                self.unborn_since = None;
                self.head = self.hint.take();
                self.facing = None;
            }
            self.queue.retain(|e| e.0 != hash);
            return true;
        }
        if me {
            self.colour = Some(colour);
            self.alive = true;
            self.unborn_since = Some(tick);
            self.head = None;
            self.facing = None;
        }
        self.queue.retain(|e| e.0 != hash);
        if !welcome {
            if self.queue.len() >= QUEUE_MAX {
                self.queue.remove(0);
            }
            self.queue.push((hash, colour, tick));
        }
        me
    }

    /// `p_gameover`: true if it is the bot.
    pub fn gameover(&mut self, raw_id: &[u8]) -> bool {
        let hash = id_hash(raw_id);
        self.queue.retain(|e| e.0 != hash);
        let me = self.me == Some(hash);
        if me {
            self.alive = false;
            self.colour = None;
            self.head = None;
            self.facing = None;
            self.unborn_since = None;
        }
        me
    }

    /// `reset_world`: nothing stands where it stood.
    pub fn reset(&mut self) {
        self.head = None;
        self.recent = [None; 2];
    }

    /// `render`, in frame order.
    pub fn render(&mut self, x: u16, y: u16, ch: u8, colour: u8) {
        let r = Render { pos: (x, y), ch, colour };
        if ch == b'%' {
            if let Some(dir) = self.birth_direction(r) {
                self.birth_of(colour, r.pos, dir);
            }
            if self.alive
                && self.colour == Some(colour)
                && let Some(dir) = self.head.and_then(|h| adjacent_step(h, r.pos))
                && let Some(slot) = self.steps.iter_mut().find(|s| s.is_none())
            {
                *slot = Some((r.pos, dir));
            }
        }
        self.recent = [self.recent[1], Some(r)];
    }

    /// If `head` completes a birth (tail, body..., head in a line), the way
    /// the new snake faces.
    /// (A move renders the new head first, so its `%` never follows a body
    /// and a tail in a line of its colour; births of snakes shorter than 3
    /// are not recognised and fall back to the only head of the colour.)
    fn birth_direction(&self, head: Render) -> Option<Dir> {
        let body = self.recent[1].filter(|b| b.colour == head.colour && b.ch == b'@')?;
        let dir = adjacent_step(body.pos, head.pos)?;
        let before = self.recent[0].filter(|t| t.colour == head.colour && matches!(t.ch, b'@' | b'*'))?;
        (adjacent_step(before.pos, body.pos) == Some(dir)).then_some(dir)
    }

    fn birth_of(&mut self, colour: u8, pos: Pos, dir: Dir) {
        let Some(i) = self.queue.iter().position(|e| e.1 == colour) else { return };
        let (hash, ..) = self.queue.remove(i);
        if self.me == Some(hash) && self.alive {
            self.birth = Some((pos, dir));
        }
    }

    /// After a frame's commands: where the bot's snake is now.
    pub fn end_frame(&mut self, view: &View, world: bool, tick: Option<u64>) -> Outcome {
        if let Some(t) = tick {
            self.queue.retain(|e| e.2 + BIRTH_WAIT_TICKS >= t);
        }
        let Some(colour) = self.colour.filter(|_| self.alive) else { return Outcome::Dead };
        if let Some((pos, dir)) = self.birth {
            self.unborn_since = None;
            self.head = Some(pos);
            self.facing = Some(dir);
            return Outcome::Born(dir);
        }
        if world {
            let old_known = self.head.is_some();
            let found = match self.head {
                Some(old) => view.nearest_head(colour, old),
                None if self.unborn_since.is_none() => view.only_head(colour),
                None => None,
            };
            self.head = found;
            return match found {
                Some(h) => {
                    self.facing = view.facing(h, colour, self.facing);
                    Outcome::Found
                }
                None if self.unborn_since.is_some() => Outcome::Unborn,
                None if old_known => Outcome::Lost,
                None => Outcome::Unknown,
            };
        }
        if let Some(since) = self.unborn_since {
            // The birth went unseen: after a while, a head that is the only
            // one of its colour will do.
            if tick.is_some_and(|t| t > since + BIRTH_WAIT_TICKS)
                && let Some(h) = view.only_head(colour)
            {
                self.unborn_since = None;
                self.head = Some(h);
                self.facing = view.facing(h, colour, None);
                return Outcome::Found;
            }
            return Outcome::Unborn;
        }
        let Some(old) = self.head else {
            // Lost earlier (say the snake followed was another one of the
            // colour): a head that is the only one of its colour will do.
            return match view.only_head(colour) {
                Some(h) => {
                    self.head = Some(h);
                    self.facing = view.facing(h, colour, None);
                    Outcome::Found
                }
                None => Outcome::Unknown,
            };
        };
        let steps = self.steps.iter().flatten().copied();
        let chosen = steps.clone().find(|s| Some(s.1) == self.expect).or_else(|| {
            let mut rest = steps.clone();
            rest.find(|s| Some(s.1) == self.facing).or_else(|| steps.clone().next())
        });
        match chosen {
            Some((pos, dir)) => {
                self.head = Some(pos);
                self.facing = Some(dir);
                Outcome::Moved(dir)
            }
            None if view.is_head(old, colour) => Outcome::Still,
            None => {
                self.head = None;
                Outcome::Lost
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field() -> View {
        View::from_rows(&["          "; 10])
    }

    /// Draws a birth as the server does: tail, body, head.
    fn birth(t: &mut Tracker, v: &mut View, cells: [Pos; 3], colour: u8) {
        for (p, ch) in cells.iter().zip([b'*', b'@', b'%']) {
            v.set(p.0, p.1, ch, colour);
            t.render(p.0, p.1, ch, colour);
        }
    }

    /// One step of a snake with head `head` to `next`, tail `tail` -> `new_tail`.
    fn step(t: &mut Tracker, v: &mut View, head: Pos, next: Pos, tail: Pos, new_tail: Pos, colour: u8) {
        for (p, ch, c) in [(next, b'%', colour), (tail, b' ', 0), (head, b'@', colour), (new_tail, b'*', colour)] {
            v.set(p.0, p.1, ch, c);
            t.render(p.0, p.1, ch, c);
        }
    }

    #[test]
    fn two_snakes_of_one_colour_are_told_apart_by_join_order() {
        let (mut t, mut v) = (Tracker::new(), field());
        t.set_me(b"me");
        t.begin_frame(None);
        assert!(!t.joined(b"other", 3, false, 10));
        assert!(t.joined(b"me", 3, false, 10));
        assert_eq!(t.end_frame(&v, false, Some(10)), Outcome::Unborn);
        // both born in the next tick, in join order: the other first
        t.begin_frame(None);
        birth(&mut t, &mut v, [(1, 1), (2, 1), (3, 1)], 3);
        birth(&mut t, &mut v, [(5, 7), (5, 6), (5, 5)], 3);
        assert_eq!(t.end_frame(&v, false, Some(11)), Outcome::Born(Dir::Up));
        assert_eq!(t.snake(), Some(((5, 5), Dir::Up)));
        // both move; ours is the one next to our head
        t.begin_frame(None);
        step(&mut t, &mut v, (3, 1), (4, 1), (1, 1), (2, 1), 3);
        step(&mut t, &mut v, (5, 5), (6, 5), (5, 7), (5, 6), 3);
        assert_eq!(t.end_frame(&v, false, Some(12)), Outcome::Moved(Dir::Right));
        assert_eq!(t.snake(), Some(((6, 5), Dir::Right)));
        // a frame without a step
        t.begin_frame(None);
        assert_eq!(t.end_frame(&v, false, None), Outcome::Still);
        // a resync lists our snake again and finds the nearest head of the colour
        t.begin_frame(None);
        assert!(t.joined(b"me", 3, true, 13));
        assert_eq!(t.end_frame(&v, true, Some(13)), Outcome::Found);
        assert_eq!(t.snake(), Some(((6, 5), Dir::Right)));
        assert!(t.gameover(b"me"));
        assert_eq!(t.end_frame(&v, false, Some(14)), Outcome::Dead);
    }

    #[test]
    fn a_move_is_not_a_birth_and_welcome_joins_are_not_queued() {
        let (mut t, mut v) = (Tracker::new(), field());
        t.set_me(b"me");
        t.begin_frame(None);
        // snakes from the welcome are not queued
        assert!(!t.joined(b"old", 2, true, 5));
        assert!(t.joined(b"me", 2, false, 5));
        // an old snake of our colour moves: no birth
        step(&mut t, &mut v, (3, 3), (4, 3), (1, 3), (2, 3), 2);
        assert_eq!(t.end_frame(&v, false, Some(6)), Outcome::Unborn);
        t.begin_frame(None);
        birth(&mut t, &mut v, [(8, 8), (7, 8), (6, 8)], 2);
        assert_eq!(t.end_frame(&v, false, Some(7)), Outcome::Born(Dir::Left));
    }

    #[test]
    fn an_unseen_birth_falls_back_to_the_only_head() {
        let (mut t, mut v) = (Tracker::new(), field());
        t.set_me(b"me");
        t.begin_frame(None);
        t.joined(b"me", 4, false, 1);
        v.set(2, 2, b'@', 4);
        v.set(3, 2, b'%', 4);
        assert_eq!(t.end_frame(&v, false, Some(2)), Outcome::Unborn);
        t.begin_frame(None);
        assert_eq!(t.end_frame(&v, false, Some(2 + BIRTH_WAIT_TICKS)), Outcome::Found);
        assert_eq!(t.snake(), Some(((3, 2), Dir::Right)));
    }

    #[test]
    fn losing_the_head() {
        let (mut t, mut v) = (Tracker::new(), field());
        t.set_me(b"me");
        t.begin_frame(None);
        t.joined(b"me", 1, false, 1);
        birth(&mut t, &mut v, [(1, 1), (2, 1), (3, 1)], 1);
        assert_eq!(t.end_frame(&v, false, Some(2)), Outcome::Born(Dir::Right));
        v.set(3, 1, b'@', 1);
        t.begin_frame(None);
        assert_eq!(t.end_frame(&v, false, Some(3)), Outcome::Lost);
        assert_eq!(t.snake(), None);
        assert!(t.alive());
        // two heads of the colour: still unknown; then only one is left
        v.set(5, 5, b'%', 1);
        v.set(5, 6, b'@', 1);
        v.set(8, 8, b'%', 1);
        t.begin_frame(None);
        assert_eq!(t.end_frame(&v, false, Some(4)), Outcome::Unknown);
        v.set(8, 8, b'x', 0);
        t.begin_frame(None);
        assert_eq!(t.end_frame(&v, false, Some(5)), Outcome::Found);
        assert_eq!(t.snake(), Some(((5, 5), Dir::Up)));
    }

    #[test]
    fn a_resumed_snake_is_found_near_where_it_was() {
        let (mut t, mut v) = (Tracker::new(), field());
        // two heads of colour 5; ours was at (6, 6) before the drop
        for (p, ch) in [((1, 1), b'*'), ((2, 1), b'@'), ((3, 1), b'%'), ((6, 8), b'*'), ((6, 7), b'@'), ((6, 6), b'%')]
        {
            v.set(p.0, p.1, ch, 5);
        }
        t.set_me(b"me");
        t.resume_at(Some((6, 6)));
        t.begin_frame(None);
        assert!(!t.joined(b"other", 5, true, 40));
        assert!(t.joined(b"me", 5, true, 40));
        assert_eq!(t.end_frame(&v, true, Some(40)), Outcome::Found);
        assert_eq!(t.snake(), Some(((6, 6), Dir::Up)));
        assert_eq!(t.head(), Some((6, 6)));
    }

    #[test]
    fn id_hashes_differ() {
        assert_ne!(id_hash(b"a"), id_hash(b"b"));
        assert_eq!(id_hash(b"abc"), id_hash(b"abc"));
    }
}
