//! A room's snapshot from the store: decoding never panics, and a snapshot
//! that decodes can be welcomed into and stepped without panicking.
#![no_main]

use libfuzzer_sys::fuzz_target;
use snakepit_game::frame::encode_welcome;
use snakepit_room_worker::snapshot::RoomSnapshot;

fuzz_target!(|bytes: &[u8]| {
    let Ok(snapshot) = RoomSnapshot::decode(bytes) else { return };
    let mut game = snapshot.game;
    let _ = encode_welcome(&game);
    for _ in 0..3 {
        game.step();
        game.clear_events();
    }
});
