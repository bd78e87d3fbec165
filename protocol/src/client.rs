//! The client protocol: parsing what a browser sends, strictly.
//!
//! Every message is hostile until it parses here; each refusal carries the
//! text the client gets in its `error` command (see docs/protocol.md).

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::ids::RoomId;

/// Longest name, in characters, as in the original.
pub const NAME_MAX_CHARS: usize = 15;
/// Largest client frame in bytes; larger frames close the connection (1009).
pub const MAX_CLIENT_FRAME: usize = 1024;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Direction {
    Left,
    Up,
    Right,
    Down,
}

impl Direction {
    pub const ALL: [Direction; 4] = [Self::Left, Self::Up, Self::Right, Self::Down];

    /// Browser key codes of the original client: 37 left .. 40 down.
    pub fn from_key_code(code: u64) -> Option<Self> {
        match code {
            37 => Some(Self::Left),
            38 => Some(Self::Up),
            39 => Some(Self::Right),
            40 => Some(Self::Down),
            _ => None,
        }
    }

    /// Cell offset; y grows down.
    pub fn delta(self) -> (i32, i32) {
        match self {
            Self::Left => (-1, 0),
            Self::Up => (0, -1),
            Self::Right => (1, 0),
            Self::Down => (0, 1),
        }
    }

    pub fn opposite(self) -> Self {
        match self {
            Self::Left => Self::Right,
            Self::Up => Self::Down,
            Self::Right => Self::Left,
            Self::Down => Self::Up,
        }
    }
}

/// A parsed client message.
#[derive(Clone, Debug, PartialEq)]
pub enum ClientMessage {
    NewPlayer { name: String, room: Option<RoomId> },
    Join,
    Key(Direction),
    Rooms,
    Spectate(RoomId),
    Enter(RoomId),
    Resume(String),
    Ping,
}

/// Why a client message was refused: always the client's fault. The
/// `Display` text is what the client receives.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ProtocolError {
    #[error("Invalid JSON")]
    InvalidJson,
    #[error("Unknown command")]
    UnknownCommand,
    #[error("Bad arguments for {0}")]
    BadArguments(&'static str),
    #[error("Key code must be 37, 38, 39 or 40")]
    BadKeyCode,
    #[error("Name must be 1 to 15 characters")]
    BadNameLength,
    #[error("Name must not contain control characters")]
    BadNameChars,
    #[error("Invalid room id")]
    BadRoomId,
    #[error("Unknown or expired resume token")]
    BadToken,
}

impl ClientMessage {
    pub fn parse(text: &str) -> Result<Self, ProtocolError> {
        let value: Value = serde_json::from_str(text).map_err(|_| ProtocolError::InvalidJson)?;
        match value {
            Value::Number(n) => {
                n.as_u64().and_then(Direction::from_key_code).map(Self::Key).ok_or(ProtocolError::BadKeyCode)
            }
            Value::Array(items) => Self::parse_command(&items),
            _ => Err(ProtocolError::UnknownCommand),
        }
    }

    fn parse_command(items: &[Value]) -> Result<Self, ProtocolError> {
        let Some(Value::String(cmd)) = items.first() else {
            return Err(ProtocolError::UnknownCommand);
        };
        let args = &items[1..];
        match cmd.as_str() {
            "new_player" => match args {
                [Value::String(name)] => Ok(Self::NewPlayer { name: validate_name(name)?, room: None }),
                [Value::String(name), Value::String(room)] => {
                    Ok(Self::NewPlayer { name: validate_name(name)?, room: Some(room_arg(room)?) })
                }
                _ => Err(ProtocolError::BadArguments("new_player")),
            },
            "join" => no_args(args, "join", Self::Join),
            "rooms" => no_args(args, "rooms", Self::Rooms),
            "ping" => no_args(args, "ping", Self::Ping),
            "spectate" => match args {
                [Value::String(room)] => Ok(Self::Spectate(room_arg(room)?)),
                _ => Err(ProtocolError::BadArguments("spectate")),
            },
            "enter" => match args {
                [Value::String(room)] => Ok(Self::Enter(room_arg(room)?)),
                _ => Err(ProtocolError::BadArguments("enter")),
            },
            "resume" => match args {
                [Value::String(token)] if is_token(token) => Ok(Self::Resume(token.clone())),
                [Value::String(_)] => Err(ProtocolError::BadToken),
                _ => Err(ProtocolError::BadArguments("resume")),
            },
            _ => Err(ProtocolError::UnknownCommand),
        }
    }
}

fn no_args(args: &[Value], cmd: &'static str, msg: ClientMessage) -> Result<ClientMessage, ProtocolError> {
    if args.is_empty() { Ok(msg) } else { Err(ProtocolError::BadArguments(cmd)) }
}

fn room_arg(room: &str) -> Result<RoomId, ProtocolError> {
    RoomId::parse(room).map_err(|_| ProtocolError::BadRoomId)
}

/// A resume token is 32 lowercase hex digits (a v4 UUID, simple form).
fn is_token(s: &str) -> bool {
    s.len() == 32 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// A player name: 1 to 15 characters, no control characters; surrounding
/// white space is trimmed.
pub fn validate_name(name: &str) -> Result<String, ProtocolError> {
    let name = name.trim();
    let chars = name.chars().count();
    if chars == 0 || chars > NAME_MAX_CHARS {
        return Err(ProtocolError::BadNameLength);
    }
    if name.chars().any(|c| {
        c.is_control() || matches!(c, '\u{200b}'..='\u{200f}' | '\u{2028}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
    }) {
        return Err(ProtocolError::BadNameChars);
    }
    Ok(name.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Result<ClientMessage, ProtocolError> {
        ClientMessage::parse(s)
    }

    #[test]
    fn original_messages_parse() {
        assert_eq!(parse(r#"["new_player","bob"]"#), Ok(ClientMessage::NewPlayer { name: "bob".into(), room: None }));
        assert_eq!(parse(r#"["join"]"#), Ok(ClientMessage::Join));
        assert_eq!(parse("37"), Ok(ClientMessage::Key(Direction::Left)));
        assert_eq!(parse("38"), Ok(ClientMessage::Key(Direction::Up)));
        assert_eq!(parse("39"), Ok(ClientMessage::Key(Direction::Right)));
        assert_eq!(parse("40"), Ok(ClientMessage::Key(Direction::Down)));
    }

    #[test]
    fn extensions_parse() {
        assert_eq!(
            parse(r#"["new_player","bob","lobby"]"#),
            Ok(ClientMessage::NewPlayer { name: "bob".into(), room: Some(RoomId::parse("lobby").unwrap()) })
        );
        assert_eq!(parse(r#"["rooms"]"#), Ok(ClientMessage::Rooms));
        assert_eq!(parse(r#"["ping"]"#), Ok(ClientMessage::Ping));
        assert!(matches!(parse(r#"["spectate","x"]"#), Ok(ClientMessage::Spectate(_))));
        assert!(matches!(parse(r#"["enter","x"]"#), Ok(ClientMessage::Enter(_))));
        let token = "0123456789abcdef0123456789abcdef";
        assert_eq!(parse(&format!(r#"["resume","{token}"]"#)), Ok(ClientMessage::Resume(token.into())));
    }

    #[test]
    fn malformed_json_is_refused() {
        assert_eq!(parse("[\"join\""), Err(ProtocolError::InvalidJson));
        assert_eq!(parse(""), Err(ProtocolError::InvalidJson));
        assert_eq!(parse("\u{0}"), Err(ProtocolError::InvalidJson));
    }

    #[test]
    fn wrong_shapes_are_refused() {
        assert_eq!(parse(r#"{"cmd":"join"}"#), Err(ProtocolError::UnknownCommand));
        assert_eq!(parse(r#""join""#), Err(ProtocolError::UnknownCommand));
        assert_eq!(parse("[]"), Err(ProtocolError::UnknownCommand));
        assert_eq!(parse("[1]"), Err(ProtocolError::UnknownCommand));
        assert_eq!(parse(r#"["fly"]"#), Err(ProtocolError::UnknownCommand));
        assert_eq!(parse("null"), Err(ProtocolError::UnknownCommand));
        assert_eq!(parse(r#"["new_player"]"#), Err(ProtocolError::BadArguments("new_player")));
        assert_eq!(parse(r#"["new_player",5]"#), Err(ProtocolError::BadArguments("new_player")));
        assert_eq!(parse(r#"["new_player","a","b","c"]"#), Err(ProtocolError::BadArguments("new_player")));
        assert_eq!(parse(r#"["join",1]"#), Err(ProtocolError::BadArguments("join")));
        assert_eq!(parse(r#"["spectate"]"#), Err(ProtocolError::BadArguments("spectate")));
        assert_eq!(parse(r#"["resume",1]"#), Err(ProtocolError::BadArguments("resume")));
        assert_eq!(parse(r#"["resume","nope"]"#), Err(ProtocolError::BadToken));
    }

    #[test]
    fn key_codes_outside_37_to_40_are_refused() {
        for s in ["36", "41", "0", "-38", "38.5", "1e3", "18446744073709551616", "87"] {
            assert_eq!(parse(s), Err(ProtocolError::BadKeyCode), "{s}");
        }
    }

    #[test]
    fn names_are_checked() {
        assert_eq!(validate_name("  ann  "), Ok("ann".into()));
        assert_eq!(validate_name(""), Err(ProtocolError::BadNameLength));
        assert_eq!(validate_name("   "), Err(ProtocolError::BadNameLength));
        assert_eq!(validate_name(&"x".repeat(16)), Err(ProtocolError::BadNameLength));
        assert_eq!(validate_name(&"é".repeat(15)), Ok("é".repeat(15)));
        assert_eq!(validate_name("a\u{7}b"), Err(ProtocolError::BadNameChars));
        assert_eq!(validate_name("a\nb"), Err(ProtocolError::BadNameChars));
        assert_eq!(validate_name("a\u{202e}b"), Err(ProtocolError::BadNameChars));
        assert_eq!(validate_name("<b>x</b>"), Ok("<b>x</b>".into()));
        assert_eq!(parse(r#"["new_player","a\u0000"]"#), Err(ProtocolError::BadNameChars));
    }

    #[test]
    fn room_ids_are_checked_in_messages() {
        assert_eq!(parse(r#"["spectate","a b"]"#), Err(ProtocolError::BadRoomId));
        assert_eq!(parse(r#"["new_player","bob",""]"#), Err(ProtocolError::BadRoomId));
    }
}
