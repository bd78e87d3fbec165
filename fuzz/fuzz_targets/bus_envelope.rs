//! A message off the bus (room input, frame, notice, or several inputs
//! sent together): decoding never panics, whatever Redis hands over.
#![no_main]

use libfuzzer_sys::fuzz_target;
use snakepit_bus::{Notice, OutFrame, RoomInput};

fuzz_target!(|bytes: &[u8]| {
    let _ = rmp_serde::from_slice::<RoomInput>(bytes);
    let _ = rmp_serde::from_slice::<OutFrame>(bytes);
    let _ = rmp_serde::from_slice::<Notice>(bytes);
    let _ = snakepit_bus::envelope::decode_each::<RoomInput>(bytes, |_| true);
});
