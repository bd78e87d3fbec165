//! Reading server frames without building a JSON tree.
//!
//! Every bot reads every tick frame of its room, so with thousands of bots
//! this is the swarm's hot path. Building a `serde_json::Value` per frame
//! would allocate for every command and string; instead a small cursor walks
//! the bytes once and calls a [`Visitor`] with borrowed pieces (numbers,
//! one-character cells, raw string slices). Commands the swarm does not need
//! and trailing arguments it does not know (the protocol grows by appending
//! arguments) are skipped, so a newer server still scans.

/// Where and why a frame could not be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ScanError {
    /// Byte offset in the frame.
    pub at: usize,
    pub what: &'static str,
}

impl std::fmt::Display for ScanError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} at byte {}", self.what, self.at)
    }
}

impl std::error::Error for ScanError {}

/// A JSON string as it appears in the frame, quotes included.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JsonStr<'a> {
    quoted: &'a [u8],
    escaped: bool,
}

impl<'a> JsonStr<'a> {
    /// The bytes between the quotes, escapes not decoded.
    pub fn raw(&self) -> &'a [u8] {
        &self.quoted[1..self.quoted.len() - 1]
    }

    /// Whether the decoded string equals `s` (no allocation unless escaped).
    pub fn is(&self, s: &str) -> bool {
        if self.escaped { self.decode().is_some_and(|d| d == s) } else { self.raw() == s.as_bytes() }
    }

    /// The decoded string; allocates, so only for rare commands.
    pub fn decode(&self) -> Option<String> {
        serde_json::from_slice(self.quoted).ok()
    }

    /// The one character of a cell (`" "`, `"%"`, `"\""`): ASCII as is,
    /// anything else as `?`. `None` if the string is not one character.
    pub fn cell_char(&self) -> Option<u8> {
        let raw = self.raw();
        match raw {
            [c] if *c != b'\\' && c.is_ascii() => Some(*c),
            [b'\\', c @ (b'"' | b'\\' | b'/')] => Some(*c),
            [b'\\', b'u', hex @ ..] if hex.len() == 4 => {
                let text = std::str::from_utf8(hex).ok()?;
                let code = u32::from_str_radix(text, 16).ok()?;
                Some(u8::try_from(code).ok().filter(u8::is_ascii).unwrap_or(b'?'))
            }
            _ if !self.escaped && std::str::from_utf8(raw).is_ok_and(|s| s.chars().count() == 1) => Some(b'?'),
            _ => None,
        }
    }
}

/// A player id as it appears in the frame: a JSON integer (the protocol's
/// form, as in the original) or, from an older server, a string; only
/// compared, never decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RawId<'a>(&'a [u8]);

impl<'a> RawId<'a> {
    /// The id's text: the integer's digits, or a string between its quotes.
    pub fn raw(&self) -> &'a [u8] {
        self.0
    }
}

/// What the swarm reacts to. Every method has an empty default.
#[allow(unused_variables)]
pub trait Visitor {
    fn tick(&mut self, n: u64) {}
    /// A `world` command starts; cells follow row by row.
    fn world_begin(&mut self) {}
    fn world_cell(&mut self, x: u16, y: u16, ch: u8, colour: u8) {}
    /// The `world` command ended; every row had `width` cells.
    fn world_end(&mut self, width: u16, height: u16) {}
    fn reset_world(&mut self) {}
    fn render(&mut self, x: u16, y: u16, ch: u8, colour: u8) {}
    /// `room` and `token` are the protocol's extension arguments.
    fn handshake(
        &mut self,
        name: JsonStr<'_>,
        player_id: RawId<'_>,
        room: Option<JsonStr<'_>>,
        token: Option<JsonStr<'_>>,
    ) {
    }
    fn spectating(&mut self, room: JsonStr<'_>) {}
    fn p_joined(&mut self, player_id: RawId<'_>, name: JsonStr<'_>, colour: u8, score: u64) {}
    fn p_score(&mut self, player_id: RawId<'_>, score: u64) {}
    fn p_gameover(&mut self, player_id: RawId<'_>) {}
    /// A `rooms` reply starts (it may list no room at all).
    fn rooms_begin(&mut self) {}
    fn room(&mut self, room: JsonStr<'_>, players: u64, capacity: u64) {}
    fn error(&mut self, text: JsonStr<'_>) {}
}

/// Reads one frame: a JSON array of commands, or one bare command.
pub fn scan_frame<V: Visitor + ?Sized>(frame: &[u8], v: &mut V) -> Result<(), ScanError> {
    let mut c = Cursor { b: frame, i: 0 };
    c.eat(b'[')?;
    match c.peek() {
        Some(b']') => c.i += 1,
        Some(b'"') => command(&mut c, v)?,
        Some(b'[') => {
            let mut items = Items::default();
            while items.next(&mut c)? {
                c.eat(b'[')?;
                command(&mut c, v)?;
            }
        }
        _ => return Err(c.err("expected a command")),
    }
    c.skip_ws();
    if c.i == c.b.len() { Ok(()) } else { Err(c.err("trailing bytes")) }
}

/// One command, after its opening `[`, up to and including its `]`.
fn command<V: Visitor + ?Sized>(c: &mut Cursor<'_>, v: &mut V) -> Result<(), ScanError> {
    let name = c.string()?;
    match name.raw() {
        b"tick" => {
            c.arg()?;
            let n = c.uint()?;
            v.tick(n);
        }
        b"render" => {
            c.arg()?;
            let x = c.small()?;
            c.arg()?;
            let y = c.small()?;
            c.arg()?;
            let ch = c.cell_char()?;
            c.arg()?;
            let colour = c.colour()?;
            v.render(x, y, ch, colour);
        }
        b"world" => {
            c.arg()?;
            world(c, v)?;
        }
        b"reset_world" => v.reset_world(),
        b"handshake" => {
            c.arg()?;
            let name = c.string()?;
            c.arg()?;
            let id = c.id()?;
            let room = if c.opt_arg()? { Some(c.string()?) } else { None };
            let token = if room.is_some() && c.opt_arg()? { Some(c.string()?) } else { None };
            v.handshake(name, id, room, token);
        }
        b"spectating" => {
            c.arg()?;
            let room = c.string()?;
            v.spectating(room);
        }
        b"p_joined" => {
            c.arg()?;
            let id = c.id()?;
            c.arg()?;
            let name = c.string()?;
            c.arg()?;
            let colour = c.colour()?;
            c.arg()?;
            let score = c.uint()?;
            v.p_joined(id, name, colour, score);
        }
        b"p_score" => {
            c.arg()?;
            let id = c.id()?;
            c.arg()?;
            let score = c.uint()?;
            v.p_score(id, score);
        }
        b"p_gameover" => {
            c.arg()?;
            let id = c.id()?;
            v.p_gameover(id);
        }
        b"rooms" => {
            c.arg()?;
            v.rooms_begin();
            c.eat(b'[')?;
            let mut items = Items::default();
            while items.next(c)? {
                c.eat(b'[')?;
                let room = c.string()?;
                c.arg()?;
                let players = c.uint()?;
                c.arg()?;
                let capacity = c.uint()?;
                c.finish_array()?;
                v.room(room, players, capacity);
            }
        }
        b"error" => {
            c.arg()?;
            let text = c.string()?;
            v.error(text);
        }
        _ => {}
    }
    c.finish_array()
}

/// The grid of a `world` command: rows of `[char, colour]`.
fn world<V: Visitor + ?Sized>(c: &mut Cursor<'_>, v: &mut V) -> Result<(), ScanError> {
    v.world_begin();
    c.eat(b'[')?;
    let mut rows = Items::default();
    let (mut y, mut width) = (0u16, None);
    while rows.next(c)? {
        c.eat(b'[')?;
        let mut cells = Items::default();
        let mut x = 0u16;
        while cells.next(c)? {
            c.eat(b'[')?;
            let ch = c.cell_char()?;
            c.arg()?;
            let colour = c.colour()?;
            c.finish_array()?;
            v.world_cell(x, y, ch, colour);
            x = x.checked_add(1).ok_or(c.err("world too wide"))?;
        }
        if *width.get_or_insert(x) != x {
            return Err(c.err("world rows differ in length"));
        }
        y = y.checked_add(1).ok_or(c.err("world too high"))?;
    }
    v.world_end(width.unwrap_or(0), y);
    Ok(())
}

/// Walks the items of an array whose `[` was read.
#[derive(Default)]
struct Items {
    started: bool,
}

impl Items {
    /// True if another item follows (its separator is consumed); false after
    /// the closing `]`.
    fn next(&mut self, c: &mut Cursor<'_>) -> Result<bool, ScanError> {
        match c.peek() {
            Some(b']') => {
                c.i += 1;
                Ok(false)
            }
            Some(b',') if self.started => {
                c.i += 1;
                Ok(true)
            }
            Some(_) if !self.started => {
                self.started = true;
                Ok(true)
            }
            _ => Err(c.err("expected , or ]")),
        }
    }
}

struct Cursor<'a> {
    b: &'a [u8],
    i: usize,
}

impl<'a> Cursor<'a> {
    fn err(&self, what: &'static str) -> ScanError {
        ScanError { at: self.i, what }
    }

    fn skip_ws(&mut self) {
        while matches!(self.b.get(self.i), Some(b' ' | b'\n' | b'\r' | b'\t')) {
            self.i += 1;
        }
    }

    fn peek(&mut self) -> Option<u8> {
        self.skip_ws();
        self.b.get(self.i).copied()
    }

    fn eat(&mut self, byte: u8) -> Result<(), ScanError> {
        if self.peek() == Some(byte) {
            self.i += 1;
            Ok(())
        } else {
            Err(self.err(match byte {
                b'[' => "expected [",
                b']' => "expected ]",
                b',' => "expected ,",
                _ => "unexpected byte",
            }))
        }
    }

    /// A required next argument of a command.
    fn arg(&mut self) -> Result<(), ScanError> {
        if self.peek() == Some(b',') {
            self.i += 1;
            Ok(())
        } else {
            Err(self.err("missing argument"))
        }
    }

    /// An optional next argument: true (separator consumed) if there is one.
    fn opt_arg(&mut self) -> Result<bool, ScanError> {
        match self.peek() {
            Some(b',') => {
                self.i += 1;
                Ok(true)
            }
            Some(b']') => Ok(false),
            _ => Err(self.err("expected , or ]")),
        }
    }

    /// Skips any further items of the current array and its `]`.
    fn finish_array(&mut self) -> Result<(), ScanError> {
        while self.opt_arg()? {
            self.skip_value()?;
        }
        self.eat(b']')
    }

    fn uint(&mut self) -> Result<u64, ScanError> {
        self.skip_ws();
        let start = self.i;
        let mut n: u64 = 0;
        while let Some(d @ b'0'..=b'9') = self.b.get(self.i).copied() {
            n = n.checked_mul(10).and_then(|n| n.checked_add(u64::from(d - b'0'))).ok_or(self.err("number too big"))?;
            self.i += 1;
        }
        if self.i == start {
            return Err(self.err("expected an unsigned integer"));
        }
        if matches!(self.b.get(self.i), Some(b'.' | b'e' | b'E')) {
            return Err(self.err("expected an integer"));
        }
        Ok(n)
    }

    /// A player id: an integer (a leading minus allowed) or a string.
    fn id(&mut self) -> Result<RawId<'a>, ScanError> {
        self.skip_ws();
        if self.peek() == Some(b'"') {
            return Ok(RawId(self.string()?.raw()));
        }
        let start = self.i;
        if self.peek() == Some(b'-') {
            self.i += 1;
        }
        self.uint()?;
        Ok(RawId(&self.b[start..self.i]))
    }

    fn small(&mut self) -> Result<u16, ScanError> {
        let n = self.uint()?;
        u16::try_from(n).map_err(|_| self.err("coordinate too big"))
    }

    fn colour(&mut self) -> Result<u8, ScanError> {
        let n = self.uint()?;
        u8::try_from(n).map_err(|_| self.err("colour too big"))
    }

    fn cell_char(&mut self) -> Result<u8, ScanError> {
        let s = self.string()?;
        s.cell_char().ok_or(self.err("a cell must be one character"))
    }

    fn string(&mut self) -> Result<JsonStr<'a>, ScanError> {
        if self.peek() != Some(b'"') {
            return Err(self.err("expected a string"));
        }
        let start = self.i;
        self.i += 1;
        let mut escaped = false;
        loop {
            match self.b.get(self.i) {
                Some(b'"') => {
                    self.i += 1;
                    return Ok(JsonStr { quoted: &self.b[start..self.i], escaped });
                }
                Some(b'\\') => {
                    escaped = true;
                    self.i += 2;
                }
                Some(_) => self.i += 1,
                None => return Err(self.err("unterminated string")),
            }
        }
    }

    fn skip_value(&mut self) -> Result<(), ScanError> {
        match self.peek() {
            Some(b'"') => self.string().map(|_| ()),
            Some(b'[' | b'{') => {
                let mut depth = 0usize;
                loop {
                    match self.peek() {
                        Some(b'[' | b'{') => {
                            depth += 1;
                            self.i += 1;
                        }
                        Some(b']' | b'}') => {
                            depth -= 1;
                            self.i += 1;
                            if depth == 0 {
                                return Ok(());
                            }
                        }
                        Some(b'"') => {
                            self.string()?;
                        }
                        Some(_) => self.i += 1,
                        None => return Err(self.err("unterminated array")),
                    }
                }
            }
            Some(b'-' | b'0'..=b'9' | b't' | b'f' | b'n') => {
                while matches!(self.b.get(self.i), Some(b'-' | b'+' | b'.' | b'0'..=b'9' | b'e' | b'E' | b'a'..=b'z')) {
                    self.i += 1;
                }
                Ok(())
            }
            _ => Err(self.err("expected a value")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Default, Debug, PartialEq)]
    struct Log(Vec<String>);

    impl Visitor for Log {
        fn tick(&mut self, n: u64) {
            self.0.push(format!("tick {n}"));
        }
        fn world_cell(&mut self, x: u16, y: u16, ch: u8, colour: u8) {
            self.0.push(format!("cell {x} {y} {} {colour}", ch as char));
        }
        fn world_end(&mut self, width: u16, height: u16) {
            self.0.push(format!("world {width}x{height}"));
        }
        fn reset_world(&mut self) {
            self.0.push("reset".into());
        }
        fn render(&mut self, x: u16, y: u16, ch: u8, colour: u8) {
            self.0.push(format!("render {x} {y} {} {colour}", ch as char));
        }
        fn handshake(
            &mut self,
            name: JsonStr<'_>,
            id: RawId<'_>,
            room: Option<JsonStr<'_>>,
            token: Option<JsonStr<'_>>,
        ) {
            let room = room.and_then(|r| r.decode()).unwrap_or_default();
            let token = token.and_then(|t| t.decode()).unwrap_or_default();
            self.0.push(format!("handshake {} {} {room} {token}", name.decode().unwrap(), id_text(id)));
        }
        fn p_score(&mut self, id: RawId<'_>, score: u64) {
            self.0.push(format!("score {} {score}", id_text(id)));
        }
        fn p_joined(&mut self, id: RawId<'_>, name: JsonStr<'_>, colour: u8, score: u64) {
            self.0.push(format!("joined {} {} {colour} {score}", id_text(id), name.decode().unwrap()));
        }
        fn p_gameover(&mut self, id: RawId<'_>) {
            self.0.push(format!("gameover {}", id_text(id)));
        }
        fn rooms_begin(&mut self) {
            self.0.push("rooms".into());
        }
        fn room(&mut self, room: JsonStr<'_>, players: u64, capacity: u64) {
            self.0.push(format!("room {} {players}/{capacity}", room.decode().unwrap()));
        }
        fn error(&mut self, text: JsonStr<'_>) {
            self.0.push(format!("error {}", text.decode().unwrap()));
        }
    }

    fn id_text(id: RawId<'_>) -> String {
        String::from_utf8(id.raw().to_vec()).unwrap()
    }

    fn scan(frame: &str) -> Vec<String> {
        let mut log = Log::default();
        scan_frame(frame.as_bytes(), &mut log).unwrap();
        log.0
    }

    #[test]
    fn reads_the_commands_the_swarm_needs() {
        let frame = r#"[["tick",7],["render",1,2,"%",3],["render",0,0,"\"",0],["p_joined",11,"a\"b",4,0],
            ["p_score",11,12],["p_gameover",11],["reset_world"],["top_scores",[["z",9,2]]],["error","nope"]]"#;
        assert_eq!(
            scan(frame),
            [
                "tick 7",
                "render 1 2 % 3",
                "render 0 0 \" 0",
                "joined 11 a\"b 4 0",
                "score 11 12",
                "gameover 11",
                "reset",
                "error nope"
            ]
        );
    }

    #[test]
    fn reads_the_world_row_by_row() {
        let frame = r##"[["tick",3],["world",[[["#",0],[" ",1]],[[" ",0],["\\",2]]]],["p_joined","p","n",1,5]]"##;
        assert_eq!(
            scan(frame),
            ["tick 3", "cell 0 0 # 0", "cell 1 0   1", "cell 0 1   0", "cell 1 1 \\ 2", "world 2x2", "joined p n 1 5"]
        );
    }

    #[test]
    fn handshake_with_and_without_extension_arguments() {
        assert_eq!(scan(r#"[["handshake","ann","id9"]]"#), ["handshake ann id9  "]);
        assert_eq!(scan(r#"[["handshake","ann","id9","lobby","tok"]]"#), ["handshake ann id9 lobby tok"]);
        assert_eq!(scan(r#"[["handshake","ann","id9","lobby"]]"#), ["handshake ann id9 lobby "]);
    }

    #[test]
    fn rooms_list_and_unknown_trailing_arguments() {
        assert_eq!(
            scan(r#"[["rooms",[["a",3,10],["b-2",0,10,{"x":[1]}]]],["tick",9,"later",[1,2],null,-1.5e3]]"#),
            ["rooms", "room a 3/10", "room b-2 0/10", "tick 9"]
        );
        assert_eq!(scan(r#"[["rooms",[]]]"#), ["rooms"]);
    }

    #[test]
    fn empty_frames_bare_commands_and_whitespace() {
        assert!(scan("[]").is_empty());
        assert_eq!(scan(r#"["tick", 4]"#), ["tick 4"]);
        assert_eq!(scan(" [ [ \"tick\" , 5 ] ] \n"), ["tick 5"]);
        assert_eq!(scan(r#"[["pong"],["spectating","r"]]"#), Vec::<String>::new());
    }

    #[test]
    fn cell_chars_are_decoded_to_one_byte() {
        assert_eq!(
            scan(r#"[["render",0,0,"\u0041",1],["render",0,0,"é",1],["render",0,0,"\/",1]]"#),
            ["render 0 0 A 1", "render 0 0 ? 1", "render 0 0 / 1"]
        );
    }

    #[test]
    fn broken_frames_are_errors() {
        let mut log = Log::default();
        for bad in [
            "",
            "{}",
            "[[\"tick\"]]",
            "[[\"tick\",-1]]",
            "[[\"tick\",1.5]]",
            "[[\"render\",1,2,\"ab\",3]]",
            "[[\"tick\",1]",
            "[[\"tick\",1]] x",
            "[[\"world\",[[[\" \",0]],[]]]]",
            "[[\"error\",\"unterminated]]",
            "[[\"render\",1,2,\"%\",300]]",
        ] {
            assert!(scan_frame(bad.as_bytes(), &mut log).is_err(), "{bad:?} should not scan");
        }
    }

    #[test]
    fn json_str_compares_without_decoding() {
        let mut found = None;
        struct Grab<'x>(&'x mut Option<bool>);
        impl Visitor for Grab<'_> {
            fn error(&mut self, text: JsonStr<'_>) {
                *self.0 = Some(text.is("a\"b") && !text.is("ab"));
            }
        }
        scan_frame(br#"[["error","a\"b"]]"#, &mut Grab(&mut found)).unwrap();
        assert_eq!(found, Some(true));
    }

    #[test]
    fn player_ids_are_integers_or_strings() {
        assert_eq!(scan(r#"[["handshake","ann",7,"lobby","tok"]]"#), ["handshake ann 7 lobby tok"]);
        assert_eq!(scan(r#"[["p_joined",-2,"bot",3,0],["p_gameover", 12]]"#), ["joined -2 bot 3 0", "gameover 12"]);
        for bad in [r#"[["p_gameover",1.5]]"#, r#"[["p_gameover",-]]"#, r#"[["p_gameover",null]]"#] {
            assert!(scan_frame(bad.as_bytes(), &mut Log::default()).is_err(), "{bad:?} should not scan");
        }
    }
}
