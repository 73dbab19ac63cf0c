//! Hostile image files against the real server process: a colour-profile
//! bomb (a 64×64 PNG whose iCCP chunk inflates to 512 MiB), a 16-bit
//! 6000×6000 PNG of a few hundred KiB, and a 16-megapixel JPEG, a dozen of
//! each at once on every image endpoint. Each is refused or served, never a
//! 5xx, and the server's peak RSS (`VmHWM` in `/proc`, measured, not timed)
//! stays within a stated budget.

use std::io::Write;

use flate2::Compression;
use flate2::write::ZlibEncoder;

use crate::common::{Body, Bot, Server, http_send, multipart};
use crate::fixtures::raw_png;

/// zlib of `total` zero bytes, streamed (never holding them).
fn zlib_zeros(total: usize, row: usize) -> Vec<u8> {
    let mut z = ZlibEncoder::new(Vec::new(), Compression::best());
    let zeros = vec![0u8; row];
    let mut left = total;
    while left > 0 {
        let n = left.min(row);
        z.write_all(&zeros[..n]).unwrap();
        left -= n;
    }
    z.finish().unwrap()
}

/// A 64×64 grey PNG with a colour profile that inflates to 512 MiB.
pub fn colour_profile_bomb() -> Vec<u8> {
    let mut iccp = b"icc\0\0".to_vec();
    iccp.extend(zlib_zeros(512 << 20, 1 << 20));
    let rows = zlib_zeros(64 * 65, 65);
    raw_png(64, 64, 8, 0, &[(b"iCCP", iccp)], rows)
}

/// A 16-bit RGB 6000×6000 PNG (216 MB of pixels, a few hundred KiB of file).
pub fn sixteen_bit_6000() -> Vec<u8> {
    let row = 1 + 6000 * 6;
    raw_png(6000, 6000, 16, 2, &[], zlib_zeros(row * 6000, row))
}

/// A 4000×4000 JPEG: exactly the 16-megapixel budget, so it is decoded.
fn sixteen_megapixel_jpeg() -> Vec<u8> {
    let img = image::RgbImage::from_fn(4000, 4000, |x, y| {
        image::Rgb([(x / 16) as u8, (y / 16) as u8, ((x + y) / 32) as u8])
    });
    let mut out = Vec::new();
    image::DynamicImage::ImageRgb8(img)
        .write_to(
            &mut std::io::Cursor::new(&mut out),
            image::ImageFormat::Jpeg,
        )
        .unwrap();
    out
}

/// The server's peak RSS must stay under this during the whole test.
const PEAK_RSS_BUDGET_MIB: u64 = 448;

#[actix_rt::test]
async fn crafted_images_are_refused_or_served_within_a_memory_budget() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[("EMOFY_WORKERS", "2")]);
    let bot = Bot::join(&server.ws(), "mallory").await;
    let auth = format!("Bearer {}", bot.token);
    let baseline = server.status_kib("VmRSS");

    let bomb = colour_profile_bomb();
    let deep = sixteen_bit_6000();
    let big = sixteen_megapixel_jpeg();
    assert!(
        bomb.len() < 700 * 1024 && deep.len() < 700 * 1024,
        "small files"
    );
    let consent = serde_json::to_vec(&serde_json::json!({
        "show_to_players": true, "use_for_training": false, "include_in_exports": false,
        "text_version": emofy_server::web::uploads::CONSENT_VERSION,
    }))
    .unwrap();

    let mut statuses = std::collections::BTreeMap::<(String, &str), Vec<u16>>::new();
    for (name, file) in [("bomb", &bomb), ("16-bit", &deep), ("16 MP", &big)] {
        for endpoint in [
            "/api/filters?chain=gray",
            "/api/faces/preview",
            "/api/uploads",
        ] {
            let mut tasks = Vec::new();
            for _ in 0..12 {
                let url = server.http(endpoint);
                let auth = auth.clone();
                let (ct, body) = if endpoint == "/api/uploads" {
                    multipart(&[("consent", None, &consent), ("photo", Some("x"), file)])
                } else {
                    ("application/octet-stream".to_owned(), file.to_vec())
                };
                tasks.push(tokio::spawn(async move {
                    http_send(
                        "POST",
                        &url,
                        &[("Content-Type", &ct), ("Authorization", &auth)],
                        Body::Fixed(body),
                    )
                    .await
                }));
            }
            for t in tasks {
                let (status, body) = t.await.unwrap();
                assert!(
                    status < 500 || status == 503,
                    "{name} on {endpoint}: {status} {body}"
                );
                if status == 503 {
                    assert_eq!(body["code"], "busy", "{body}");
                }
                statuses
                    .entry((name.to_owned(), endpoint))
                    .or_default()
                    .push(status);
            }
        }
    }
    let peak = server.status_kib("VmHWM");
    eprintln!(
        "baseline RSS {} MiB, peak {} MiB; statuses {statuses:?}",
        baseline >> 10,
        peak >> 10
    );
    // The colour profile is never inflated: the bomb decodes as the 64×64 image it is.
    assert!(statuses[&("bomb".into(), "/api/filters?chain=gray")].contains(&200));
    // 36 megapixels are over the budget: refused from the header, before decoding.
    for endpoint in [
        "/api/filters?chain=gray",
        "/api/faces/preview",
        "/api/uploads",
    ] {
        assert!(
            statuses[&("16-bit".into(), endpoint)]
                .iter()
                .all(|s| *s == 413),
            "{endpoint}: {:?}",
            statuses[&("16-bit".into(), endpoint)]
        );
    }
    // At most `imaging.concurrent` (2) decode at once; the rest are told to come back.
    let big_filters = &statuses[&("16 MP".into(), "/api/filters?chain=gray")];
    assert!(big_filters.contains(&200), "{big_filters:?}");
    assert!(
        peak < PEAK_RSS_BUDGET_MIB << 10,
        "peak RSS {} MiB is over the {PEAK_RSS_BUDGET_MIB} MiB budget",
        peak >> 10
    );
}
