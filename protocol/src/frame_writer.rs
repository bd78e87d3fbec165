//! Writing server frames: a JSON array of commands, built straight into one
//! buffer. A room encodes each tick once and every member gets the same
//! bytes, so this is on the hot path: no intermediate values, no per-command
//! allocation.

use bytes::Bytes;

use crate::ids::{PlayerId, RoomId};
use crate::listing::{RoomInfo, ScoreEntry};

#[derive(Debug)]
pub struct FrameWriter {
    buf: Vec<u8>,
    commands: usize,
}

impl Default for FrameWriter {
    fn default() -> Self {
        Self::with_capacity(256)
    }
}

impl FrameWriter {
    pub fn with_capacity(cap: usize) -> Self {
        let mut buf = Vec::with_capacity(cap);
        buf.push(b'[');
        Self { buf, commands: 0 }
    }

    /// Number of commands written so far.
    pub fn len(&self) -> usize {
        self.commands
    }

    pub fn is_empty(&self) -> bool {
        self.commands == 0
    }

    /// The finished frame; the writer is emptied and keeps its buffer.
    pub fn take(&mut self) -> Bytes {
        self.buf.push(b']');
        let out = Bytes::copy_from_slice(&self.buf);
        self.buf.clear();
        self.buf.push(b'[');
        self.commands = 0;
        out
    }

    pub fn finish(mut self) -> Bytes {
        self.take()
    }

    /// A frame holding only `["tick", n]`.
    pub fn finish_tick(mut self, tick: u64) -> Bytes {
        self.tick(tick);
        self.take()
    }

    fn begin(&mut self, name: &str) {
        if self.commands > 0 {
            self.buf.push(b',');
        }
        self.commands += 1;
        self.buf.extend_from_slice(b"[\"");
        self.buf.extend_from_slice(name.as_bytes());
        self.buf.push(b'"');
    }

    fn end(&mut self) {
        self.buf.push(b']');
    }

    fn uint(&mut self, n: u64) {
        self.buf.push(b',');
        self.buf.extend_from_slice(itoa::Buffer::new().format(n).as_bytes());
    }

    fn str(&mut self, s: &str) {
        self.buf.push(b',');
        push_json_str(&mut self.buf, s);
    }

    fn id(&mut self, id: PlayerId) {
        self.buf.push(b',');
        self.buf.extend_from_slice(itoa::Buffer::new().format(id.0).as_bytes());
    }

    fn cell(&mut self, ch: u8, colour: u8) {
        self.buf.extend_from_slice(b"[\"");
        push_cell_char(&mut self.buf, ch);
        self.buf.extend_from_slice(b"\",");
        self.buf.extend_from_slice(itoa::Buffer::new().format(colour).as_bytes());
        self.buf.push(b']');
    }

    pub fn tick(&mut self, tick: u64) {
        self.begin("tick");
        self.uint(tick);
        self.end();
    }

    pub fn render(&mut self, x: u16, y: u16, ch: u8, colour: u8) {
        self.begin("render");
        self.uint(x.into());
        self.uint(y.into());
        self.buf.extend_from_slice(b",\"");
        push_cell_char(&mut self.buf, ch);
        self.buf.push(b'"');
        self.uint(colour.into());
        self.end();
    }

    pub fn reset_world(&mut self) {
        self.begin("reset_world");
        self.end();
    }

    pub fn p_joined(&mut self, id: PlayerId, name: &str, colour: u8, score: u64) {
        self.begin("p_joined");
        self.id(id);
        self.str(name);
        self.uint(colour.into());
        self.uint(score);
        self.end();
    }

    pub fn p_gameover(&mut self, id: PlayerId) {
        self.begin("p_gameover");
        self.id(id);
        self.end();
    }

    pub fn p_score(&mut self, id: PlayerId, score: u64) {
        self.begin("p_score");
        self.id(id);
        self.uint(score);
        self.end();
    }

    pub fn top_scores(&mut self, scores: &[ScoreEntry]) {
        self.begin("top_scores");
        self.buf.extend_from_slice(b",[");
        for (i, s) in scores.iter().enumerate() {
            if i > 0 {
                self.buf.push(b',');
            }
            self.buf.push(b'[');
            push_json_str(&mut self.buf, &s.name);
            self.uint(s.score);
            self.uint(s.colour.into());
            self.buf.push(b']');
        }
        self.buf.push(b']');
        self.end();
    }

    /// The whole field, row by row: `cell(x, y)` gives char and colour.
    pub fn world(&mut self, width: u16, height: u16, cell: impl Fn(u16, u16) -> (u8, u8)) {
        self.begin("world");
        self.buf.extend_from_slice(b",[");
        for y in 0..height {
            if y > 0 {
                self.buf.push(b',');
            }
            self.buf.push(b'[');
            for x in 0..width {
                if x > 0 {
                    self.buf.push(b',');
                }
                let (ch, colour) = cell(x, y);
                self.cell(ch, colour);
            }
            self.buf.push(b']');
        }
        self.buf.push(b']');
        self.end();
    }

    pub fn handshake(&mut self, name: &str, id: PlayerId, room: &RoomId, token: &str) {
        self.begin("handshake");
        self.str(name);
        self.id(id);
        self.str(room.as_str());
        self.str(token);
        self.end();
    }

    pub fn spectating(&mut self, room: &RoomId) {
        self.begin("spectating");
        self.str(room.as_str());
        self.end();
    }

    pub fn rooms(&mut self, rooms: &[RoomInfo]) {
        self.begin("rooms");
        self.buf.extend_from_slice(b",[");
        for (i, r) in rooms.iter().enumerate() {
            if i > 0 {
                self.buf.push(b',');
            }
            self.buf.push(b'[');
            push_json_str(&mut self.buf, r.id.as_str());
            self.uint(r.players.into());
            self.uint(r.capacity.into());
            self.buf.push(b']');
        }
        self.buf.push(b']');
        self.end();
    }

    pub fn error(&mut self, text: &str) {
        self.begin("error");
        self.str(text);
        self.end();
    }

    pub fn pong(&mut self) {
        self.begin("pong");
        self.end();
    }
}

/// One frame holding one `error` command.
pub fn error_frame(text: &str) -> Bytes {
    let mut w = FrameWriter::with_capacity(32 + text.len());
    w.error(text);
    w.finish()
}

fn push_cell_char(buf: &mut Vec<u8>, ch: u8) {
    match ch {
        b'"' | b'\\' => {
            buf.push(b'\\');
            buf.push(ch);
        }
        0x20..=0x7e => buf.push(ch),
        _ => buf.push(b'?'),
    }
}

fn push_json_str(buf: &mut Vec<u8>, s: &str) {
    // Writing a str into a Vec cannot fail.
    if serde_json::to_writer(&mut *buf, s).is_err() {
        buf.extend_from_slice(b"\"\"");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    fn parse(b: &Bytes) -> Value {
        serde_json::from_slice(b).unwrap()
    }

    #[test]
    fn empty_frame_is_an_empty_array() {
        assert_eq!(parse(&FrameWriter::default().finish()), json!([]));
    }

    #[test]
    fn commands_are_valid_json_in_the_original_shape() {
        let id = PlayerId::random();
        let mut w = FrameWriter::default();
        w.tick(7);
        w.render(1, 2, b'%', 3);
        w.render(0, 0, b'"', 0);
        w.p_joined(id, "a\"b<i>", 4, 0);
        w.p_score(id, 12);
        w.p_gameover(id);
        w.reset_world();
        w.top_scores(&[ScoreEntry { name: "z".into(), score: 9, colour: 2 }]);
        w.error("nope");
        assert_eq!(w.len(), 9);
        let v = parse(&w.take());
        let ids = id.0;
        assert_eq!(
            v,
            json!([
                ["tick", 7],
                ["render", 1, 2, "%", 3],
                ["render", 0, 0, "\"", 0],
                ["p_joined", ids, "a\"b<i>", 4, 0],
                ["p_score", ids, 12],
                ["p_gameover", ids],
                ["reset_world"],
                ["top_scores", [["z", 9, 2]]],
                ["error", "nope"]
            ])
        );
        // the writer is reusable after take()
        w.pong();
        assert_eq!(parse(&w.take()), json!([["pong"]]));
    }

    #[test]
    fn world_is_rows_of_char_and_colour() {
        let mut w = FrameWriter::default();
        w.world(3, 2, |x, y| (if x == y { b'#' } else { b' ' }, x as u8));
        assert_eq!(
            parse(&w.finish()),
            json!([["world", [[["#", 0], [" ", 1], [" ", 2]], [[" ", 0], ["#", 1], [" ", 2]]]]])
        );
    }

    #[test]
    fn handshake_rooms_and_spectating() {
        let id = PlayerId::random();
        let room = RoomId::parse("lobby").unwrap();
        let mut w = FrameWriter::default();
        w.handshake("ann", id, &room, "tok");
        w.spectating(&room);
        w.rooms(&[RoomInfo { id: room.clone(), players: 3, capacity: 10 }]);
        assert_eq!(
            parse(&w.finish()),
            json!([["handshake", "ann", id.0, "lobby", "tok"], ["spectating", "lobby"], ["rooms", [["lobby", 3, 10]]]])
        );
    }
}
