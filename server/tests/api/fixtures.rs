//! Image fixtures, one place: PNG encoding of a decoded image, small seeded
//! greys for store tests (distinct bytes per seed, so distinct content ids),
//! and a raw chunk writer for PNGs no encoder would produce (lying headers,
//! bombs), with real CRCs so only the intended fault is present.

use std::io::Cursor;

use image::{DynamicImage, GrayImage, ImageFormat, Luma};

/// Encodes `img` as PNG.
pub fn png_of(img: &DynamicImage) -> Vec<u8> {
    let mut out = Vec::new();
    img.write_to(&mut Cursor::new(&mut out), ImageFormat::Png)
        .unwrap();
    out
}

/// A `side`×`side` grey PNG whose bytes differ for every `seed` below 63,001
/// (two pixels carry it) and whose texture varies with it (so crops differ).
pub fn grey_png(side: u32, seed: u32) -> Vec<u8> {
    let mut img = GrayImage::from_fn(side, side, |x, y| {
        Luma([(seed as u8).wrapping_add((x * y) as u8)])
    });
    img.put_pixel(0, 0, Luma([(seed % 251) as u8]));
    img.put_pixel(side - 1, 0, Luma([(seed / 251) as u8]));
    png_of(&DynamicImage::ImageLuma8(img))
}

/// Appends one PNG chunk (length, type, data, CRC over type and data).
pub fn chunk(out: &mut Vec<u8>, kind: &[u8; 4], data: &[u8]) {
    out.extend_from_slice(&(data.len() as u32).to_be_bytes());
    out.extend_from_slice(kind);
    out.extend_from_slice(data);
    let mut c = kind.to_vec();
    c.extend_from_slice(data);
    out.extend_from_slice(&crc32fast::hash(&c).to_be_bytes());
}

/// A PNG written chunk by chunk: IHDR from the arguments, then `extra`
/// chunks, one IDAT holding `idat` (already zlib-compressed), IEND.
pub fn raw_png(
    width: u32,
    height: u32,
    depth: u8,
    color: u8,
    extra: &[(&[u8; 4], Vec<u8>)],
    idat: Vec<u8>,
) -> Vec<u8> {
    let mut out = b"\x89PNG\r\n\x1a\n".to_vec();
    let mut ihdr = Vec::new();
    ihdr.extend_from_slice(&width.to_be_bytes());
    ihdr.extend_from_slice(&height.to_be_bytes());
    ihdr.extend_from_slice(&[depth, color, 0, 0, 0]);
    chunk(&mut out, b"IHDR", &ihdr);
    for (kind, data) in extra {
        chunk(&mut out, kind, data);
    }
    chunk(&mut out, b"IDAT", &idat);
    chunk(&mut out, b"IEND", &[]);
    out
}

/// A valid 4×4 PNG whose header claims `width`×`height` (checksum fixed, so
/// only the size is wrong).
pub fn png_claiming(width: u32, height: u32) -> Vec<u8> {
    let mut out = png_of(&DynamicImage::ImageLuma8(GrayImage::new(4, 4)));
    // IHDR data starts at byte 16 (after the signature, length and type);
    // its CRC follows the 13 data bytes.
    out[16..20].copy_from_slice(&width.to_be_bytes());
    out[20..24].copy_from_slice(&height.to_be_bytes());
    let crc = crc32fast::hash(&out[12..29]);
    out[29..33].copy_from_slice(&crc.to_be_bytes());
    out
}

#[test]
fn seeds_give_distinct_pngs_and_claims_keep_valid_crcs() {
    let a: std::collections::HashSet<Vec<u8>> = (0..600).map(|s| grey_png(4, s)).collect();
    assert_eq!(a.len(), 600);
    let lie = png_claiming(30_000, 20_000);
    assert_eq!(&lie[16..24], &[0, 0, 0x75, 0x30, 0, 0, 0x4e, 0x20]);
    let crc = u32::from_be_bytes(lie[29..33].try_into().unwrap());
    assert_eq!(crc, crc32fast::hash(&lie[12..29]));
    let raw = raw_png(1, 1, 8, 0, &[], vec![]);
    assert!(raw.ends_with(&crc32fast::hash(b"IEND").to_be_bytes()));
}
