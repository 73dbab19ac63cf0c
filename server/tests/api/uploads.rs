//! Contributed photos over HTTP: upload with consent (face crop, EXIF gone,
//! the model's guess), the contributor's own label, listing, deletion (out of
//! rounds at once), bad uploads that store nothing, and swapping the model.

use std::io::Cursor;

use crate::common::{
    Body, Bot, TestApp, get_json, http_bytes, http_get, http_send, multipart, spawn_app,
    test_config,
};
use crate::fixtures::{png_claiming, png_of};
use emofy_inference::face::FaceDetector;
use image::{DynamicImage, ImageFormat, Rgb, RgbImage, imageops};
use serde_json::{Value, json};

const SECRET: &[u8] = b"EMOFY-GPS-48.8584N-2.2945E";

pub fn consent() -> Value {
    json!({
        "show_to_players": true,
        "use_for_training": true,
        "include_in_exports": false,
        "text_version": emofy_server::web::uploads::CONSENT_VERSION,
    })
}

/// A "photo": a synthetic face pasted into a larger scene, as JPEG.
pub fn scene_with_face(index: u32) -> DynamicImage {
    let face = emofy_server::dataset::demo_faces::generate(4242, index).unwrap();
    let face = image::load_from_memory(&face.png).unwrap().to_rgb8();
    let face = imageops::resize(&face, 200, 200, imageops::FilterType::Triangle);
    let mut scene = RgbImage::from_fn(480, 360, |x, y| {
        Rgb([(90 + x / 8) as u8, (110 + y / 6) as u8, 140])
    });
    imageops::overlay(&mut scene, &face, 150, 60);
    DynamicImage::ImageRgb8(scene)
}

/// Photos the bundled detector finds a face in (searched once, deterministically).
pub fn face_photos(n: usize) -> Vec<DynamicImage> {
    let detector = FaceDetector::bundled(5.0).unwrap();
    let found: Vec<_> = (0..60)
        .map(scene_with_face)
        .filter(|img| detector.largest_face(&img.to_luma8()).is_some())
        .take(n)
        .collect();
    assert_eq!(found.len(), n, "the detector finds enough synthetic faces");
    found
}

pub fn jpeg(img: &DynamicImage) -> Vec<u8> {
    let mut out = Vec::new();
    img.write_to(&mut Cursor::new(&mut out), ImageFormat::Jpeg)
        .unwrap();
    out
}

/// A JPEG with an EXIF segment holding `SECRET` (as a camera would store GPS).
fn jpeg_with_exif(img: &DynamicImage) -> Vec<u8> {
    let plain = jpeg(img);
    let mut tiff = b"II*\0\x08\0\0\0\0\0\0\0\0\0".to_vec();
    tiff.extend_from_slice(SECRET);
    let mut app1 = b"Exif\0\0".to_vec();
    app1.extend_from_slice(&tiff);
    let len = (app1.len() + 2) as u16;
    let mut out = plain[..2].to_vec();
    out.extend_from_slice(&[0xFF, 0xE1]);
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(&app1);
    out.extend_from_slice(&plain[2..]);
    assert!(out.windows(SECRET.len()).any(|w| w == SECRET));
    out
}

pub async fn upload(
    app: &TestApp,
    token: &str,
    consent: Option<&Value>,
    photo: Option<&[u8]>,
) -> (u16, Value) {
    let consent_bytes = consent.map(|c| serde_json::to_vec(c).unwrap());
    let mut parts: Vec<(&str, Option<&str>, &[u8])> = Vec::new();
    if let Some(c) = &consent_bytes {
        parts.push(("consent", None, c));
    }
    if let Some(p) = photo {
        parts.push(("photo", Some("me.jpg"), p));
    }
    let (ct, body) = multipart(&parts);
    let auth = format!("Bearer {token}");
    http_send(
        "POST",
        &app.http("/api/uploads"),
        &[("Content-Type", &ct), ("Authorization", &auth)],
        Body::Fixed(body),
    )
    .await
}

async fn call(
    app: &TestApp,
    method: &str,
    path: &str,
    token: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let auth = format!("Bearer {token}");
    match body {
        Some(b) => {
            http_send(
                method,
                &app.http(path),
                &[
                    ("Authorization", &auth),
                    ("Content-Type", "application/json"),
                ],
                Body::Fixed(serde_json::to_vec(&b).unwrap()),
            )
            .await
        }
        None => {
            http_send(
                method,
                &app.http(path),
                &[("Authorization", &auth)],
                Body::None,
            )
            .await
        }
    }
}

fn upload_config(dir: &std::path::Path) -> emofy_server::Config {
    let mut c = test_config(dir);
    c.demo.images = 0;
    c
}

#[actix_rt::test]
async fn a_contributed_face_is_cropped_predicted_labelled_played_and_deleted() {
    let dir = tempfile::tempdir().unwrap();
    let app = spawn_app(upload_config(dir.path())).await;
    let mut alice = Bot::join(&app.ws(), "alice").await;
    let mut bob = Bot::join(&app.ws(), "bob").await;
    let photo = jpeg_with_exif(&face_photos(1)[0]);

    let (status, up) = upload(&app, &alice.token, Some(&consent()), Some(&photo)).await;
    assert_eq!(status, 201, "{up}");
    let id = up["image"]["id"].as_str().unwrap().to_owned();
    let face = &up["face"];
    assert!(
        face["w"].as_u64().unwrap() > 100 && face["score"].as_f64().unwrap() >= 5.0,
        "{up}"
    );
    let probs = up["prediction"]["probabilities"].as_object().unwrap();
    assert_eq!(probs.len(), 7);
    let sum: f64 = probs.values().map(|v| v.as_f64().unwrap()).sum();
    assert!((sum - 1.0).abs() < 1e-3);
    assert!(
        up["prediction"]["model"]
            .as_str()
            .unwrap()
            .starts_with("mini-xception")
    );
    assert_eq!(
        up["consent"]["text_version"],
        emofy_server::web::uploads::CONSENT_VERSION
    );
    assert_eq!(up["kept_original"], false);
    assert_eq!(up["label"], Value::Null);
    assert_eq!(up["consensus"], Value::Null);

    // Only the crop is stored, as PNG, without the photo's metadata.
    let (status, _, crop) =
        crate::common::http_request("GET", &app.http(&format!("/images/{id}")), &[], None).await;
    assert_eq!(status, 200);
    assert!(crop.starts_with(b"\x89PNG"));
    assert!(
        !crop.windows(SECRET.len()).any(|w| w == SECRET),
        "EXIF must not survive"
    );
    let crop = image::load_from_memory(&crop).unwrap();
    assert_eq!(crop.width(), crop.height());
    assert!(crop.width() <= 256);

    // The contributor lists it and answers "Select the correct one!" once.
    let (status, list) = call(&app, "GET", "/api/uploads", &alice.token, None).await;
    assert_eq!(status, 200);
    assert_eq!(list["uploads"].as_array().unwrap().len(), 1);
    assert_eq!(list["uploads"][0]["image"]["id"], id.as_str());
    let path = format!("/api/uploads/{id}/label");
    let (status, labelled) = call(
        &app,
        "PUT",
        &path,
        &alice.token,
        Some(json!({"emotion": "happy"})),
    )
    .await;
    assert_eq!(status, 200, "{labelled}");
    assert_eq!(labelled["votes"], 1);
    let (status, again) = call(
        &app,
        "PUT",
        &path,
        &alice.token,
        Some(json!({"emotion": "sad"})),
    )
    .await;
    assert_eq!(
        (status, again["code"].as_str()),
        (409, Some("already_labelled"))
    );
    // Someone else cannot label, see or delete it through the uploads API.
    let (status, _) = call(
        &app,
        "PUT",
        &path,
        &bob.token,
        Some(json!({"emotion": "sad"})),
    )
    .await;
    assert_eq!(status, 404);
    let (status, _) = call(
        &app,
        "DELETE",
        &format!("/api/uploads/{id}"),
        &bob.token,
        None,
    )
    .await;
    assert_eq!(status, 404);

    // Other players get it in rounds with the model's guess; the contributor never does.
    assert!(alice.next_round().await.is_none());
    let round = bob.next_round().await.expect("a round with the upload");
    assert_eq!(round["image"]["id"], id.as_str());
    assert_eq!(round["suggestion"]["emotion"], up["prediction"]["emotion"]);

    // Delete: bytes gone, out of rounds at once, gone from the list.
    let (status, _) = call(
        &app,
        "DELETE",
        &format!("/api/uploads/{id}"),
        &alice.token,
        None,
    )
    .await;
    assert_eq!(status, 204);
    assert_eq!(http_get(&app.http(&format!("/images/{id}"))).await.0, 404);
    let (_, list) = call(&app, "GET", "/api/uploads", &alice.token, None).await;
    assert_eq!(list["uploads"].as_array().unwrap().len(), 0);
    let mut carol = Bot::join(&app.ws(), "carol").await;
    assert!(carol.next_round().await.is_none());
    let stats = get_json(&app.http("/api/stats")).await;
    assert_eq!(stats["removed"], 1);
    app.stop().await;
}

#[actix_rt::test]
async fn uploads_page_newest_first_and_private_faces_stay_out_of_rounds() {
    let dir = tempfile::tempdir().unwrap();
    let app = spawn_app(upload_config(dir.path())).await;
    let alice = Bot::join(&app.ws(), "alice").await;
    let mut bob = Bot::join(&app.ws(), "bob").await;
    let photos = face_photos(3);
    let private = json!({
        "show_to_players": false,
        "use_for_training": true,
        "include_in_exports": false,
        "keep_original": true,
        "text_version": emofy_server::web::uploads::CONSENT_VERSION,
    });
    let mut ids = Vec::new();
    for p in &photos {
        let (status, up) = upload(&app, &alice.token, Some(&private), Some(&png_of(p))).await;
        assert_eq!(status, 201, "{up}");
        assert_eq!(up["kept_original"], true);
        ids.push(up["image"]["id"].as_str().unwrap().to_owned());
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    // The same photo again is the same face crop: refused, not stored twice.
    let (status, dup) = upload(
        &app,
        &alice.token,
        Some(&private),
        Some(&png_of(&photos[0])),
    )
    .await;
    assert_eq!(
        (status, dup["code"].as_str()),
        (409, Some("already_uploaded"))
    );

    let (_, page1) = call(&app, "GET", "/api/uploads?limit=2", &alice.token, None).await;
    let got: Vec<_> = page1["uploads"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["image"]["id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(got, vec![ids[2].clone(), ids[1].clone()]);
    let next = page1["next"].as_str().unwrap();
    let (_, page2) = call(
        &app,
        "GET",
        &format!("/api/uploads?limit=2&after={next}"),
        &alice.token,
        None,
    )
    .await;
    assert_eq!(page2["uploads"].as_array().unwrap().len(), 1);
    assert_eq!(page2["uploads"][0]["image"]["id"], ids[0].as_str());
    assert_eq!(page2["next"], Value::Null);
    let (status, bad) = call(
        &app,
        "GET",
        "/api/uploads?after=nonsense",
        &alice.token,
        None,
    )
    .await;
    assert_eq!(
        (status, bad["code"].as_str()),
        (400, Some("invalid_message"))
    );

    // Not consented to be shown: never offered in rounds.
    assert!(bob.next_round().await.is_none());
    app.stop().await;
}

#[actix_rt::test]
async fn bad_uploads_get_clear_errors_and_store_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let app = spawn_app(upload_config(dir.path())).await;
    let alice = Bot::join(&app.ws(), "alice").await;
    let photo = jpeg(&face_photos(1)[0]);
    let c = consent();

    // (what, consent, photo, HTTP status, error code)
    type Case = (
        &'static str,
        Option<Value>,
        Option<Vec<u8>>,
        u16,
        &'static str,
    );
    let cases: Vec<Case> = vec![
        (
            "not an image",
            Some(c.clone()),
            Some(b"hello, this is text".to_vec()),
            415,
            "unsupported_image",
        ),
        (
            "truncated",
            Some(c.clone()),
            Some(photo[..photo.len() / 3].to_vec()),
            415,
            "unsupported_image",
        ),
        (
            "30000x30000 PNG",
            Some(c.clone()),
            Some(png_claiming(30_000, 30_000)),
            413,
            "image_too_large",
        ),
        (
            "zero bytes",
            Some(c.clone()),
            Some(Vec::new()),
            400,
            "unsupported_image",
        ),
        ("no photo", Some(c.clone()), None, 400, "unsupported_image"),
        (
            "no consent",
            None,
            Some(photo.clone()),
            400,
            "consent_required",
        ),
        (
            "outdated consent text",
            Some(
                json!({"show_to_players": true, "use_for_training": true, "include_in_exports": true, "text_version": "1999-01-01"}),
            ),
            Some(photo.clone()),
            400,
            "consent_required",
        ),
        (
            "consent to nothing",
            Some(
                json!({"show_to_players": false, "use_for_training": false, "include_in_exports": true, "text_version": emofy_server::web::uploads::CONSENT_VERSION}),
            ),
            Some(photo.clone()),
            400,
            "consent_required",
        ),
        (
            "consent is not JSON",
            Some(json!("yes")),
            Some(photo.clone()),
            400,
            "consent_required",
        ),
        (
            "no face",
            Some(c.clone()),
            Some(png_of(&DynamicImage::ImageRgb8(RgbImage::from_fn(
                300,
                200,
                |x, _| Rgb([x as u8, 90, 200]),
            )))),
            422,
            "no_face",
        ),
    ];
    for (what, consent, photo, status, code) in cases {
        let (got, body) = upload(&app, &alice.token, consent.as_ref(), photo.as_deref()).await;
        assert_eq!(
            (got, body["code"].as_str()),
            (status, Some(code)),
            "{what}: {body}"
        );
        assert!(
            body["message"].as_str().is_some_and(|m| !m.is_empty()),
            "{what}"
        );
    }

    // 50 MB: refused from its announced length, and while streaming when no length is announced.
    let big = vec![0xAB; 50 * 1024 * 1024];
    let (ct, body) = multipart(&[
        ("consent", None, &serde_json::to_vec(&c).unwrap()),
        ("photo", Some("big.jpg"), &big),
    ]);
    let auth = format!("Bearer {}", alice.token);
    let (status, body) = http_send(
        "POST",
        &app.http("/api/uploads"),
        &[("Content-Type", &ct), ("Authorization", &auth)],
        Body::Fixed(body),
    )
    .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (413, Some("payload_too_large"))
    );
    let boundary_ct = multipart(&[]).0;
    let (status, body) = http_send(
        "POST",
        &app.http("/api/uploads"),
        &[("Content-Type", &boundary_ct), ("Authorization", &auth)],
        Body::Chunked {
            fill: b'x',
            total: 50 * 1024 * 1024,
        },
    )
    .await;
    assert_eq!(status / 100, 4, "{body}");
    let (status, body) = streaming_upload(&app, &auth, 50 * 1024 * 1024).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (413, Some("payload_too_large"))
    );

    // Without a token, or with a forged one.
    let (ct, body) = multipart(&[("photo", Some("me.jpg"), &photo)]);
    let (status, resp) = http_send(
        "POST",
        &app.http("/api/uploads"),
        &[("Content-Type", &ct)],
        Body::Fixed(body.clone()),
    )
    .await;
    assert_eq!((status, resp["code"].as_str()), (401, Some("unauthorized")));
    let (status, resp) = http_send(
        "POST",
        &app.http("/api/uploads"),
        &[
            ("Content-Type", &ct),
            ("Authorization", "Bearer v1.bad.token"),
        ],
        Body::Fixed(body),
    )
    .await;
    assert_eq!(
        (status, resp["code"].as_str()),
        (401, Some("invalid_token"))
    );

    // Nothing was stored by any of it.
    let stats = get_json(&app.http("/api/stats")).await;
    assert_eq!(stats["images"], 0, "{stats}");
    let (_, list) = call(&app, "GET", "/api/uploads", &alice.token, None).await;
    assert_eq!(list["uploads"].as_array().unwrap().len(), 0);
    // The server still accepts a good upload afterwards.
    let (status, _) = upload(&app, &alice.token, Some(&c), Some(&photo)).await;
    assert_eq!(status, 201);
    app.stop().await;
}

/// A well-formed multipart upload whose photo part streams `size` bytes with no length announced.
async fn streaming_upload(app: &TestApp, auth: &str, size: usize) -> (u16, Value) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let (ct, _) = multipart(&[]);
    let boundary = ct.split("boundary=").nth(1).unwrap().to_owned();
    let host = format!("127.0.0.1:{}", app.port);
    let s = tokio::net::TcpStream::connect(&host).await.unwrap();
    let (mut rd, mut wr) = s.into_split();
    let head = format!(
        "POST /api/uploads HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\nAuthorization: {auth}\r\nContent-Type: {ct}\r\nTransfer-Encoding: chunked\r\n\r\n"
    );
    let consent = serde_json::to_string(&consent()).unwrap();
    let preamble = format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"consent\"\r\n\r\n{consent}\r\n--{boundary}\r\nContent-Disposition: form-data; name=\"photo\"; filename=\"big.jpg\"\r\n\r\n"
    );
    let writer = tokio::spawn(async move {
        wr.write_all(head.as_bytes()).await?;
        wr.write_all(format!("{:x}\r\n{preamble}\r\n", preamble.len()).as_bytes())
            .await?;
        let chunk = vec![0xCD; 64 * 1024];
        let mut sent = 0;
        while sent < size {
            wr.write_all(format!("{:x}\r\n", chunk.len()).as_bytes())
                .await?;
            wr.write_all(&chunk).await?;
            wr.write_all(b"\r\n").await?;
            sent += chunk.len();
        }
        Ok::<_, std::io::Error>(())
    });
    let mut buf = Vec::new();
    let _ =
        tokio::time::timeout(std::time::Duration::from_secs(30), rd.read_to_end(&mut buf)).await;
    writer.abort();
    let text = String::from_utf8_lossy(&buf).to_string();
    let status: u16 = text
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = text.split("\r\n\r\n").nth(1).unwrap_or_default();
    let json_start = body.find('{').unwrap_or(0);
    let json_end = body.rfind('}').map_or(body.len(), |i| i + 1);
    (
        status,
        serde_json::from_str(&body[json_start..json_end]).unwrap_or(Value::Null),
    )
}

#[actix_rt::test]
async fn an_admin_swaps_the_model_version_while_serving() {
    let dir = tempfile::tempdir().unwrap();
    let models_root = tempfile::tempdir().unwrap();
    let mut config = upload_config(dir.path());
    config.demo.images = 5;
    config.model.models_root = Some(models_root.path().to_path_buf());
    let app = spawn_app(config).await;
    // An admin account, made the way `emofy admin create-moderator` does.
    let admin = crate::common::moderator_token(&app, emofy_game::Role::Admin).await;

    // A second version of the model: the bundled weights under another version id,
    // in the models root.
    let model_dir = models_root.path().join("v2");
    std::fs::create_dir(&model_dir).unwrap();
    let bundled = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../inference/models/mini-xception-fer2013");
    std::fs::copy(
        bundled.join("model.safetensors"),
        model_dir.join("model.safetensors"),
    )
    .unwrap();
    let mut cfg: Value =
        serde_json::from_slice(&std::fs::read(bundled.join("config.json")).unwrap()).unwrap();
    cfg["version"] = json!("mini-xception-fer2013-v2-test");
    std::fs::write(
        model_dir.join("config.json"),
        serde_json::to_vec(&cfg).unwrap(),
    )
    .unwrap();

    let player = Bot::join(&app.ws(), "pat").await;
    let dir_json = json!({"dir": "v2"});
    let (status, resp) = call(
        &app,
        "POST",
        "/api/admin/model",
        &player.token,
        Some(dir_json.clone()),
    )
    .await;
    assert_eq!((status, resp["code"].as_str()), (403, Some("forbidden")));
    let (status, resp) = call(
        &app,
        "POST",
        "/api/admin/model",
        &admin,
        Some(json!({"dir": "/nonexistent"})),
    )
    .await;
    assert_eq!(status, 422, "{resp}");
    let (status, resp) = call(&app, "POST", "/api/admin/model", &admin, Some(dir_json)).await;
    assert_eq!(status, 202, "{resp}");
    assert_eq!(resp["version"], "mini-xception-fer2013-v2-test");
    assert!(
        resp["previous"]
            .as_str()
            .unwrap()
            .starts_with("mini-xception-fer2013-")
    );

    // New uploads are classified by the new version; rounds switch over once it has classified the pool.
    let photo = png_of(&face_photos(1)[0]);
    let (status, up) = upload(&app, &player.token, Some(&consent()), Some(&photo)).await;
    assert_eq!(status, 201, "{up}");
    assert_eq!(up["prediction"]["model"], "mini-xception-fer2013-v2-test");
    let mut seen_new = false;
    for _ in 0..50 {
        let mut viewer = Bot::join(&app.ws(), "viewer").await;
        let round = viewer.next_round().await.expect("a round");
        if round["suggestion"]["model"] == "mini-xception-fer2013-v2-test" {
            seen_new = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(seen_new, "rounds show the new model's guesses");
    app.stop().await;
}

#[actix_rt::test]
async fn an_upload_through_one_replica_is_played_with_its_guess_on_another() {
    let dir = tempfile::tempdir().unwrap();
    let a = spawn_app(upload_config(dir.path())).await;
    let b = spawn_app(upload_config(dir.path())).await;
    let alice = Bot::join(&a.ws(), "alice").await;
    let photo = png_of(&face_photos(1)[0]);
    let (status, up) = upload(&a, &alice.token, Some(&consent()), Some(&photo)).await;
    assert_eq!(status, 201, "{up}");
    // B learns of it at its next pool refresh (1 s in tests).
    tokio::time::sleep(std::time::Duration::from_millis(2_500)).await;
    let mut bob = Bot::join(&b.ws(), "bob").await;
    let round = bob.next_round().await.expect("the upload is in B's pool");
    assert_eq!(round["image"]["id"], up["image"]["id"]);
    assert_eq!(round["suggestion"]["emotion"], up["prediction"]["emotion"]);
    a.stop().await;
    b.stop().await;
}

#[actix_rt::test]
async fn photo_filters_preview_and_a_filtered_photo_becomes_a_contribution() {
    let dir = tempfile::tempdir().unwrap();
    let app = spawn_app(upload_config(dir.path())).await;
    let alice = Bot::join(&app.ws(), "alice").await;
    let photo = jpeg(&face_photos(1)[0]);
    let auth = format!("Bearer {}", alice.token);
    let headers = [
        ("Content-Type", "image/jpeg"),
        ("Authorization", auth.as_str()),
    ];

    // A chain: preview comes back as PNG, at most 512 px per side, rotated.
    let url = app.http("/api/filters?chain=mirror,sepia,rotate_right");
    let (status, head, png) = http_bytes("POST", &url, &headers, &photo).await;
    assert_eq!(status, 200, "{head}");
    assert!(
        head.to_ascii_lowercase()
            .contains("content-type: image/png")
    );
    let out = image::load_from_memory(&png).unwrap();
    let original = image::load_from_memory(&photo).unwrap();
    assert!(out.width().max(out.height()) <= 512);
    assert!(
        (out.width() > out.height()) != (original.width() > original.height()),
        "rotated"
    );

    // Every filter alone works on a real photo.
    for f in emofy_server::imaging::filters::Filter::ALL {
        let url = app.http(&format!("/api/filters?chain={}", f.name()));
        let (status, head, _) = http_bytes("POST", &url, &headers, &photo).await;
        assert_eq!(status, 200, "{}: {head}", f.name());
    }

    // Clear errors, nothing stored.
    let url = app.http("/api/filters?chain=gray,wobble");
    let (status, _, body) = http_bytes("POST", &url, &headers, &photo).await;
    assert_eq!(status, 400);
    let v: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(v["code"], "invalid_message");
    assert!(v["detail"].as_str().unwrap().contains("rainbowify"), "{v}");
    let url = app.http("/api/filters?chain=gray");
    let (status, _, _) = http_bytes("POST", &url, &[("Content-Type", "image/jpeg")], &photo).await;
    assert_eq!(status, 401);
    let (status, _, body) = http_bytes("POST", &url, &headers, b"not an image").await;
    assert_eq!(status, 415, "{}", String::from_utf8_lossy(&body));

    // The face crop a photo would give, before sending: PNG, square, nothing stored.
    let url = app.http("/api/faces/preview");
    let (status, head, crop) = http_bytes("POST", &url, &headers, &photo).await;
    assert_eq!(status, 200, "{head}");
    let crop = image::load_from_memory(&crop).unwrap();
    assert_eq!(crop.width(), crop.height());
    assert_eq!(get_json(&app.http("/api/stats")).await["images"], 0);
    let blank = png_of(&DynamicImage::ImageRgb8(RgbImage::from_pixel(
        300,
        200,
        Rgb([90, 120, 90]),
    )));
    let (status, _, body) = http_bytes("POST", &url, &headers, &blank).await;
    assert_eq!(status, 422);
    let v: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(v["code"], "no_face");
    let (status, _, _) = http_bytes("POST", &url, &[], &photo).await;
    assert_eq!(status, 401);

    // The mirrored photo is contributed like any other: consent, face, prediction.
    let url = app.http("/api/filters?chain=mirror");
    let (_, _, mirrored) = http_bytes("POST", &url, &headers, &photo).await;
    let (status, up) = upload(&app, &alice.token, Some(&consent()), Some(&mirrored)).await;
    assert_eq!(status, 201, "{up}");
    assert_eq!(
        up["prediction"]["probabilities"].as_object().unwrap().len(),
        7
    );
    app.stop().await;
}
