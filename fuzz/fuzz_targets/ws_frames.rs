//! The WebSocket frame guard: any byte stream, split anywhere, is followed
//! without a panic, and a split never changes its verdict.
#![no_main]

use emofy_server::web::sockets::FrameGuard;
use libfuzzer_sys::fuzz_target;

fn verdict(bytes: &[u8], split: usize) -> bool {
    let stream = futures_util::stream::empty::<Result<bytes::Bytes, actix_web::error::PayloadError>>();
    let mut g = FrameGuard::new(stream, 4096, Default::default());
    bytes.chunks(split.max(1)).all(|c| g.follow(c))
}

fuzz_target!(|data: &[u8]| {
    let Some((&split, bytes)) = data.split_first() else {
        return;
    };
    assert_eq!(verdict(bytes, bytes.len().max(1)), verdict(bytes, usize::from(split)));
});
