//! The live board socket's parser (`ViewerMessage::parse`).
#![no_main]

use emofy_server::error::ErrorCode;
use emofy_server::protocol::ViewerMessage;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Err(e) = ViewerMessage::parse(text) {
        assert!(
            matches!(e.code, ErrorCode::BadJson | ErrorCode::InvalidMessage),
            "{e:?}"
        );
    }
});
