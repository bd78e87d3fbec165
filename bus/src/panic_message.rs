//! What a caught panic said, for a log line or an error: the message of
//! `panic!`, `expect` and the like, whichever string type it carries.

use std::any::Any;

/// The panic's message, or a note that it carried none.
pub fn panic_message(payload: &(dyn Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "panic with a non-string payload".to_owned())
}
