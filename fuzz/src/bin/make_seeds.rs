//! Writes the seed corpus of each target (`fuzz/corpus/<target>/`): real
//! messages and a real snapshot, so the fuzzer starts from what the code
//! reads every day. Run once after a format change:
//! `cargo run --manifest-path fuzz/Cargo.toml --bin make_seeds`.

use std::fs;
use std::path::Path;

use snakepit_bus::{ConnId, FrameKind, InputKind, Notice, OutFrame, PlayerId, RoomId, RoomInput};
use snakepit_game::{Game, GameSettings};
use snakepit_protocol::client::Direction;
use snakepit_room_worker::snapshot::{MemberSnapshot, RoomSnapshot};

fn write(target: &str, name: &str, bytes: &[u8]) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus").join(target);
    fs::create_dir_all(&dir).expect("corpus folder");
    fs::write(dir.join(name), bytes).expect("seed written");
}

fn main() {
    for (i, text) in [
        r#"["new_player","ann"]"#,
        r#"["new_player","bob","lobby"]"#,
        r#"["join"]"#,
        "38",
        r#"["rooms"]"#,
        r#"["spectate","lobby"]"#,
        r#"["resume","0123456789abcdef0123456789abcdef"]"#,
        r#"["ping"]"#,
    ]
    .iter()
    .enumerate()
    {
        write("client_message", &format!("seed-{i}"), text.as_bytes());
    }

    let room = RoomId::parse("lobby").expect("room id");
    let conn = ConnId::random();
    let inputs = [
        InputKind::Enter { name: Some("ann".into()), resync: false, key: 7, gateway: Some("gateway-1".into()) },
        InputKind::Join,
        InputKind::Turn(Direction::Up),
        InputKind::Disconnect,
    ];
    for (i, kind) in inputs.into_iter().enumerate() {
        let input = RoomInput { player: PlayerId(3), conn, kind };
        write("bus_envelope", &format!("input-{i}"), &rmp_serde::to_vec(&input).expect("encode"));
    }
    let frame = OutFrame { epoch: 5, tick: 9, kind: FrameKind::Tick, payload: br#"[["tick",9]]"#.to_vec().into() };
    write("bus_envelope", "frame", &rmp_serde::to_vec(&frame).expect("encode"));
    write("bus_envelope", "notice", &rmp_serde::to_vec(&Notice::RoomCreated(room)).expect("encode"));

    let settings = GameSettings { robots: 2, ..GameSettings::default() };
    let mut game = Game::new(settings, 11);
    game.set_park_allowance(100);
    game.add_player(PlayerId(1), "ann".into());
    let _ = game.join(PlayerId(1));
    for _ in 0..5 {
        game.step();
        game.clear_events();
    }
    let member = MemberSnapshot { player: PlayerId(1), conn, is_player: true, disconnected: false, key: 7 };
    let snapshot = RoomSnapshot { game, members: vec![member] };
    write("room_snapshot", "two-robots", &snapshot.encode().expect("encode"));
}
