//! A client's text message: parsing never panics, and what it accepts
//! holds only what the protocol allows.
#![no_main]

use libfuzzer_sys::fuzz_target;
use snakepit_protocol::client::{ClientMessage, NAME_MAX_CHARS, validate_name};

fuzz_target!(|text: &str| {
    if let Ok(ClientMessage::NewPlayer { name, .. }) = ClientMessage::parse(text) {
        assert!(name.chars().count() <= NAME_MAX_CHARS);
        assert_eq!(validate_name(&name).ok().as_deref(), Some(name.as_str()), "an accepted name is valid as it is");
    }
});
