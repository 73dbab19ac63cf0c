//! The one bounded image decoder: every photo, preview, filter input, import
//! and prediction is decoded here.
//!
//! A file is hostile until bounded. Before a pixel is decoded:
//! * the format is sniffed from the bytes (PNG or JPEG; never a name or a
//!   declared type);
//! * the header's dimensions are checked against a side and a pixel budget;
//! * the memory the decode will take (the 8-bit output, plus a progressive
//!   JPEG's coefficient planes) is estimated from the header and checked
//!   against a byte budget, which the decoder is also given as its own
//!   allocation limit.
//!
//! PNGs are decoded straight to 8 bits per channel (16-bit images never take
//! twice the memory), colour profiles (`iCCP`) and text chunks are skipped
//! unread (a few hundred compressed bytes can inflate to hundreds of
//! megabytes), and the EXIF orientation is applied. The result carries no
//! metadata.

use image::{DynamicImage, ImageBuffer, ImageDecoder};

use crate::InferenceError;

/// Limits for one decode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DecodeLimits {
    /// Largest width or height in pixels.
    pub max_side: u32,
    /// Largest width × height.
    pub max_pixels: u64,
    /// Largest estimated memory for the decode, in bytes (also the decoder's allocation limit).
    pub max_bytes: u64,
}

impl DecodeLimits {
    /// The server's defaults: 6000 px a side, 16 megapixels, 160 MiB.
    pub const DEFAULT: DecodeLimits = DecodeLimits {
        max_side: 6000,
        max_pixels: 16_000_000,
        max_bytes: 160 * 1024 * 1024,
    };

    /// Only a side limit (pixels and bytes follow from it): for trusted tools.
    pub fn side(max_side: u32) -> DecodeLimits {
        let pixels = u64::from(max_side) * u64::from(max_side);
        DecodeLimits {
            max_side,
            max_pixels: pixels,
            max_bytes: pixels.saturating_mul(10),
        }
    }
}

impl Default for DecodeLimits {
    fn default() -> Self {
        DecodeLimits::DEFAULT
    }
}

/// The image formats Emofy reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImageKind {
    Png,
    Jpeg,
}

impl ImageKind {
    pub fn mime(self) -> &'static str {
        match self {
            ImageKind::Png => "image/png",
            ImageKind::Jpeg => "image/jpeg",
        }
    }
}

/// What the header says, before anything is decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ImageHeader {
    pub kind: ImageKind,
    pub width: u32,
    pub height: u32,
    /// Estimated bytes the decode takes.
    pub decode_bytes: u64,
}

const PNG_MAGIC: &[u8] = b"\x89PNG\r\n\x1a\n";

/// The format by its magic bytes.
pub fn sniff(bytes: &[u8]) -> Option<ImageKind> {
    if bytes.starts_with(PNG_MAGIC) {
        Some(ImageKind::Png)
    } else if bytes.starts_with(&[0xFF, 0xD8, 0xFF]) {
        Some(ImageKind::Jpeg)
    } else {
        None
    }
}

fn bad(why: impl Into<String>) -> InferenceError {
    InferenceError::BadInput(why.into())
}

/// JPEG markers before the first scan: the frame's dimensions, its component
/// count and whether it is progressive. `None` when the marker walk fails.
struct JpegFrame {
    width: u32,
    height: u32,
    components: u32,
    progressive: bool,
}

fn jpeg_frame(bytes: &[u8]) -> Option<JpegFrame> {
    let mut i = 2; // after SOI
    loop {
        // Markers may be padded with any number of 0xFF bytes.
        while *bytes.get(i)? == 0xFF && *bytes.get(i + 1)? == 0xFF {
            i += 1;
        }
        if *bytes.get(i)? != 0xFF {
            return None;
        }
        let marker = *bytes.get(i + 1)?;
        i += 2;
        match marker {
            // Standalone markers: no length.
            0x01 | 0xD0..=0xD7 => continue,
            0xD8..=0xDA => return None, // SOI again, EOI or a scan before any frame
            _ => {}
        }
        let len = usize::from(u16::from_be_bytes([*bytes.get(i)?, *bytes.get(i + 1)?]));
        if len < 2 {
            return None;
        }
        let is_frame = matches!(marker, 0xC0..=0xCF) && !matches!(marker, 0xC4 | 0xC8 | 0xCC);
        if is_frame {
            let seg = bytes.get(i + 2..i + len)?;
            if seg.len() < 6 {
                return None;
            }
            return Some(JpegFrame {
                height: u32::from(u16::from_be_bytes([seg[1], seg[2]])),
                width: u32::from(u16::from_be_bytes([seg[3], seg[4]])),
                components: u32::from(seg[5]),
                progressive: matches!(marker, 0xC2 | 0xC6 | 0xCA | 0xCE),
            });
        }
        i += len;
    }
}

/// Reads and checks the header: the format, the dimensions against the side
/// and pixel limits, and the decode's memory estimate against `max_bytes`.
pub fn probe(bytes: &[u8], limits: &DecodeLimits) -> Result<ImageHeader, InferenceError> {
    if bytes.is_empty() {
        return Err(bad("the file is empty"));
    }
    let kind = sniff(bytes).ok_or_else(|| bad("not a PNG or JPEG image"))?;
    let (width, height, decode_bytes) = match kind {
        ImageKind::Png => {
            let mut d = png_decoder(bytes, limits);
            let info = d
                .read_header_info()
                .map_err(|e| bad(format!("unreadable PNG header: {e}")))?;
            let channels = u64::from(match info.color_type {
                png::ColorType::Grayscale => 1u8,
                png::ColorType::GrayscaleAlpha => 2,
                png::ColorType::Rgb => 3,
                // Palette images expand to RGB(A); count the alpha to be safe.
                png::ColorType::Rgba | png::ColorType::Indexed => 4,
            });
            let (w, h) = (info.width, info.height);
            // The output at 8 bits per channel, and two rows being unfiltered.
            let row = u64::from(w) * channels * 2;
            (w, h, u64::from(w) * u64::from(h) * channels + 2 * row)
        }
        ImageKind::Jpeg => {
            if !crate::jpeg_is_complete(bytes) {
                return Err(bad(
                    "the JPEG is truncated (no end-of-image marker after its last scan)",
                ));
            }
            let f = jpeg_frame(bytes).ok_or_else(|| bad("unreadable JPEG header"))?;
            if !(1..=4).contains(&f.components) {
                return Err(bad(format!("a JPEG with {} components", f.components)));
            }
            let pixels = u64::from(f.width) * u64::from(f.height);
            // The output (grey, RGB or RGBA), a copy of the input, and for a
            // progressive JPEG the 16-bit coefficients of every component.
            let out = pixels * u64::from(f.components.clamp(1, 4));
            let coefficients = if f.progressive {
                pixels * u64::from(f.components) * 2
            } else {
                0
            };
            (f.width, f.height, out + coefficients + bytes.len() as u64)
        }
    };
    if width == 0 || height == 0 {
        return Err(bad(format!("{width}×{height} has no pixels")));
    }
    if width > limits.max_side || height > limits.max_side {
        return Err(InferenceError::TooLarge(format!(
            "{width}×{height} is larger than {} pixels per side",
            limits.max_side
        )));
    }
    let pixels = u64::from(width) * u64::from(height);
    if pixels > limits.max_pixels {
        return Err(InferenceError::TooLarge(format!(
            "{width}×{height} is {:.1} megapixels; at most {:.1}",
            pixels as f64 / 1e6,
            limits.max_pixels as f64 / 1e6
        )));
    }
    if decode_bytes > limits.max_bytes {
        return Err(InferenceError::TooLarge(format!(
            "decoding {width}×{height} would take {} MiB; at most {} MiB",
            decode_bytes.div_ceil(1 << 20),
            limits.max_bytes >> 20
        )));
    }
    Ok(ImageHeader {
        kind,
        width,
        height,
        decode_bytes,
    })
}

fn png_decoder<'a>(
    bytes: &'a [u8],
    limits: &DecodeLimits,
) -> png::Decoder<std::io::Cursor<&'a [u8]>> {
    let mut options = png::DecodeOptions::default();
    options.set_ignore_iccp_chunk(true);
    options.set_ignore_text_chunk(true);
    let mut d = png::Decoder::new_with_options(std::io::Cursor::new(bytes), options);
    d.set_limits(png::Limits {
        bytes: usize::try_from(limits.max_bytes).unwrap_or(usize::MAX),
    });
    d
}

/// Decodes a PNG or JPEG within `limits` (see the module docs), upright by
/// its EXIF orientation, without metadata.
pub fn decode(bytes: &[u8], limits: &DecodeLimits) -> Result<DynamicImage, InferenceError> {
    use image::metadata::Orientation;
    let header = probe(bytes, limits)?;
    let turn = orientation(bytes, header.kind);
    // Turning a quarter allocates a second image; flips work in place.
    let output = u64::from(header.width) * u64::from(header.height) * 4;
    let turns = matches!(
        turn,
        Orientation::Rotate90
            | Orientation::Rotate270
            | Orientation::Rotate90FlipH
            | Orientation::Rotate270FlipH
    );
    if turns && header.decode_bytes + output > limits.max_bytes {
        return Err(InferenceError::TooLarge(format!(
            "decoding and turning {}×{} upright would take more than {} MiB",
            header.width,
            header.height,
            limits.max_bytes >> 20
        )));
    }
    let mut img = match header.kind {
        ImageKind::Png => decode_png(bytes, limits)?,
        ImageKind::Jpeg => decode_jpeg(bytes, limits)?,
    };
    if (img.width(), img.height()) != (header.width, header.height) {
        return Err(bad("the decoded size differs from the header's"));
    }
    if turn != Orientation::NoTransforms {
        img.apply_orientation(turn);
    }
    Ok(img)
}

fn decode_png(bytes: &[u8], limits: &DecodeLimits) -> Result<DynamicImage, InferenceError> {
    let mut d = png_decoder(bytes, limits);
    d.set_transformations(png::Transformations::normalize_to_color8());
    let mut reader = d
        .read_info()
        .map_err(|e| bad(format!("cannot decode the PNG: {e}")))?;
    let size = reader
        .output_buffer_size()
        .ok_or_else(|| InferenceError::TooLarge("the PNG's output does not fit memory".into()))?;
    if size as u64 > limits.max_bytes {
        return Err(InferenceError::TooLarge(format!(
            "the PNG would decode to {} MiB",
            size >> 20
        )));
    }
    let mut buf = vec![0u8; size];
    let frame = reader
        .next_frame(&mut buf)
        .map_err(|e| bad(format!("cannot decode the PNG: {e}")))?;
    buf.truncate(frame.buffer_size());
    let (w, h) = (frame.width, frame.height);
    let short = || bad("the PNG's pixel data is short");
    Ok(match (frame.color_type, frame.bit_depth) {
        (png::ColorType::Grayscale, png::BitDepth::Eight) => {
            DynamicImage::ImageLuma8(ImageBuffer::from_raw(w, h, buf).ok_or_else(short)?)
        }
        (png::ColorType::GrayscaleAlpha, png::BitDepth::Eight) => {
            DynamicImage::ImageLumaA8(ImageBuffer::from_raw(w, h, buf).ok_or_else(short)?)
        }
        (png::ColorType::Rgb, png::BitDepth::Eight) => {
            DynamicImage::ImageRgb8(ImageBuffer::from_raw(w, h, buf).ok_or_else(short)?)
        }
        (png::ColorType::Rgba, png::BitDepth::Eight) => {
            DynamicImage::ImageRgba8(ImageBuffer::from_raw(w, h, buf).ok_or_else(short)?)
        }
        (c, b) => return Err(bad(format!("unsupported PNG output {c:?} at {b:?}"))),
    })
}

fn decode_jpeg(bytes: &[u8], limits: &DecodeLimits) -> Result<DynamicImage, InferenceError> {
    let mut d = image::codecs::jpeg::JpegDecoder::new(std::io::Cursor::new(bytes))
        .map_err(|e| bad(format!("cannot decode the JPEG: {e}")))?;
    let mut l = image::Limits::default();
    l.max_image_width = Some(limits.max_side);
    l.max_image_height = Some(limits.max_side);
    l.max_alloc = Some(limits.max_bytes);
    d.set_limits(l).map_err(|e| match e {
        image::ImageError::Limits(_) => InferenceError::TooLarge(e.to_string()),
        other => bad(other.to_string()),
    })?;
    DynamicImage::from_decoder(d).map_err(|e| match e {
        image::ImageError::Limits(_) => InferenceError::TooLarge(e.to_string()),
        other => bad(format!("cannot decode the JPEG: {other}")),
    })
}

/// The EXIF orientation (`NoTransforms` when absent or unreadable).
fn orientation(bytes: &[u8], kind: ImageKind) -> image::metadata::Orientation {
    use image::metadata::Orientation;
    let exif = match kind {
        ImageKind::Jpeg => image::codecs::jpeg::JpegDecoder::new(std::io::Cursor::new(bytes))
            .ok()
            .and_then(|mut d| d.exif_metadata().ok().flatten()),
        ImageKind::Png => {
            // Only the chunks before the image data are read: 1 MiB is plenty.
            let limits = DecodeLimits {
                max_bytes: 1 << 20,
                ..DecodeLimits::DEFAULT
            };
            png_decoder(bytes, &limits)
                .read_info()
                .ok()
                .and_then(|r| r.info().exif_metadata.as_ref().map(|e| e.to_vec()))
        }
    };
    exif.and_then(|e| Orientation::from_exif_chunk(&e))
        .unwrap_or(Orientation::NoTransforms)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn png_of(img: &DynamicImage) -> Vec<u8> {
        let mut out = Vec::new();
        img.write_to(&mut std::io::Cursor::new(&mut out), image::ImageFormat::Png)
            .ok();
        out
    }

    fn gradient(w: u32, h: u32) -> DynamicImage {
        DynamicImage::ImageRgb8(image::RgbImage::from_fn(w, h, |x, y| {
            image::Rgb([(x * 3) as u8, (y * 5) as u8, 77])
        }))
    }

    #[test]
    fn png_and_jpeg_decode_within_limits() {
        let img = gradient(40, 30);
        let png = png_of(&img);
        let out = decode(&png, &DecodeLimits::DEFAULT).ok();
        assert_eq!(out.map(|i| i.to_rgb8()), Some(img.to_rgb8()));
        let mut jpeg = Vec::new();
        img.write_to(
            &mut std::io::Cursor::new(&mut jpeg),
            image::ImageFormat::Jpeg,
        )
        .ok();
        let h = probe(&jpeg, &DecodeLimits::DEFAULT).ok();
        assert_eq!(
            h.map(|h| (h.kind, h.width, h.height)),
            Some((ImageKind::Jpeg, 40, 30))
        );
        assert!(decode(&jpeg, &DecodeLimits::DEFAULT).is_ok());
    }

    #[test]
    fn limits_are_checked_from_the_header() {
        let png = png_of(&gradient(40, 30));
        let small = |side, pixels, bytes| DecodeLimits {
            max_side: side,
            max_pixels: pixels,
            max_bytes: bytes,
        };
        assert!(matches!(
            probe(&png, &small(39, 10_000, 1 << 20)),
            Err(InferenceError::TooLarge(_))
        ));
        assert!(matches!(
            probe(&png, &small(64, 1_199, 1 << 20)),
            Err(InferenceError::TooLarge(_))
        ));
        assert!(matches!(
            probe(&png, &small(64, 10_000, 3_000)),
            Err(InferenceError::TooLarge(_))
        ));
        assert!(probe(&png, &small(40, 1_200, 1 << 20)).is_ok());
        assert!(matches!(
            probe(b"GIF89a....", &DecodeLimits::DEFAULT),
            Err(InferenceError::BadInput(_))
        ));
        assert!(matches!(
            probe(&[], &DecodeLimits::DEFAULT),
            Err(InferenceError::BadInput(_))
        ));
    }

    #[test]
    fn sixteen_bit_pngs_decode_to_eight_bits() {
        let img = DynamicImage::ImageRgb16(image::ImageBuffer::from_fn(8, 4, |x, y| {
            image::Rgb([(x * 8000) as u16, (y * 9000) as u16, 65535])
        }));
        let png = png_of(&img);
        let out = decode(&png, &DecodeLimits::DEFAULT).ok();
        assert_eq!(out.map(|i| i.color()), Some(image::ColorType::Rgb8));
    }

    #[test]
    fn a_jpeg_marker_walk_never_panics_on_garbage() {
        for n in 0..64u8 {
            let mut b = vec![0xFF, 0xD8, 0xFF];
            b.extend((0..n).map(|i| i.wrapping_mul(37)));
            let _ = jpeg_frame(&b);
            let _ = probe(&b, &DecodeLimits::DEFAULT);
        }
    }
}
