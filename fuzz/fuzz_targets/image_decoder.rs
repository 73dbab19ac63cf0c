//! The image sniffer and bounded decoder: any file is an image within the
//! limits or a refusal (`BadInput` / `TooLarge`), never a panic and never an
//! image larger than the limits allow.
#![no_main]

use emofy_inference::{DecodeLimits, decode, probe, sniff};
use libfuzzer_sys::fuzz_target;

const LIMITS: DecodeLimits = DecodeLimits {
    max_side: 512,
    max_pixels: 65_536,
    max_bytes: 4 << 20,
};

fuzz_target!(|data: &[u8]| {
    let _ = sniff(data);
    let header = probe(data, &LIMITS);
    if let Ok(img) = decode(data, &LIMITS) {
        assert!(header.is_ok());
        assert!(img.width() <= LIMITS.max_side && img.height() <= LIMITS.max_side);
        assert!(u64::from(img.width()) * u64::from(img.height()) <= LIMITS.max_pixels);
    }
});
