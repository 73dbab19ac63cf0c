//! What we promise to erase is gone: a deleted upload leaves none of its
//! bytes in any file of the data dir (database, WAL, shared memory), not
//! after the `204`, not after a shutdown, not after a restart; the data dir
//! is private (0700, files 0600); the WAL stays bounded during play; and on
//! MongoDB no document of any collection holds the bytes any more.

use std::path::Path;

use serde_json::{Value, json};

use crate::common::{Body, Bot, TestApp, http_bytes, http_send, spawn_app, test_config};
use crate::fixtures::png_of;
use crate::uploads::{face_photos, upload};

/// Pieces of `bytes` to look for: 24-byte windows every 61 bytes, past the
/// first 128 (PNG signature, header and chunk layout are alike in every PNG).
pub fn needles(bytes: &[u8]) -> Vec<&[u8]> {
    (128..bytes.len().saturating_sub(24))
        .step_by(61)
        .map(|i| &bytes[i..i + 24])
        .collect()
}

/// How many of `needles` appear in any file under `dir` (recursively), and where.
pub fn found_in_files(dir: &Path, needles: &[&[u8]]) -> (usize, Vec<String>) {
    let finders: Vec<memchr::memmem::Finder> =
        needles.iter().map(memchr::memmem::Finder::new).collect();
    let mut hits = 0;
    let mut files = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap() {
            let p = entry.unwrap().path();
            if p.is_dir() {
                stack.push(p);
                continue;
            }
            let data = std::fs::read(&p).unwrap();
            let n = finders.iter().filter(|f| f.find(&data).is_some()).count();
            if n > 0 {
                files.push(format!(
                    "{} ({n} pieces)",
                    p.file_name().unwrap().to_string_lossy()
                ));
            }
            hits += n;
        }
    }
    (hits, files)
}

async fn upload_face(app: &TestApp, token: &str, keep_original: bool) -> Value {
    let consent = json!({
        "show_to_players": true,
        "use_for_training": true,
        "include_in_exports": false,
        "keep_original": keep_original,
        "text_version": emofy_server::web::uploads::CONSENT_VERSION,
    });
    let photo = png_of(&face_photos(1)[0]);
    let (status, up) = upload(app, token, Some(&consent), Some(&photo)).await;
    assert_eq!(status, 201, "{up}");
    up
}

#[cfg(unix)]
fn mode(p: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p).unwrap().permissions().mode() & 0o777
}

#[actix_rt::test]
async fn a_deleted_upload_leaves_no_byte_in_any_file_of_the_data_dir() {
    let base = tempfile::tempdir().unwrap();
    let dir = base.path().join("data");
    let app = spawn_app(test_config(&dir)).await;
    let alice = Bot::join(&app.ws(), "alice").await;
    let up = upload_face(&app, &alice.token, true).await;
    let id = up["image"]["id"].as_str().unwrap().to_owned();

    // What is stored: the crop (served) and the kept original (read from the database).
    let (status, _, crop) =
        http_bytes("GET", &app.http(&format!("/images/{id}.png")), &[], b"").await;
    assert_eq!(status, 200);
    let original: Vec<u8> = {
        let conn = rusqlite::Connection::open_with_flags(
            dir.join("emofy.db"),
            rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
        )
        .unwrap();
        conn.query_row(
            "SELECT original FROM uploads WHERE image_id = ?1",
            [&id],
            |r| r.get(0),
        )
        .unwrap()
    };
    assert!(original.len() > 1000 && crop.len() > 1000);
    let mut pieces = needles(&crop);
    pieces.extend(needles(&original));
    let (before, _) = found_in_files(&dir, &pieces);
    assert!(
        before > pieces.len() / 2,
        "the bytes are on disk before the deletion ({before} of {} pieces)",
        pieces.len()
    );

    let auth = format!("Bearer {}", alice.token);
    let (status, _) = http_send(
        "DELETE",
        &app.http(&format!("/api/uploads/{id}")),
        &[("Authorization", &auth)],
        Body::None,
    )
    .await;
    assert_eq!(status, 204);
    let (after, files) = found_in_files(&dir, &pieces);
    assert_eq!(after, 0, "erased bytes still in {files:?}");

    #[cfg(unix)]
    {
        assert_eq!(mode(&dir), 0o700);
        for entry in std::fs::read_dir(&dir).unwrap() {
            let p = entry.unwrap().path();
            assert_eq!(mode(&p), 0o600, "{}", p.display());
        }
    }

    app.stop().await;
    let (after_stop, files) = found_in_files(&dir, &pieces);
    assert_eq!(after_stop, 0, "after shutdown: {files:?}");
    let app = spawn_app(test_config(&dir)).await;
    let (status, _, _) = http_bytes("GET", &app.http(&format!("/images/{id}.png")), &[], b"").await;
    assert_eq!(status, 404);
    app.stop().await;
    let (after_restart, files) = found_in_files(&dir, &pieces);
    assert_eq!(after_restart, 0, "after a restart: {files:?}");
}

#[actix_rt::test]
async fn the_wal_stays_bounded_during_a_long_bot_run() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = test_config(dir.path());
    config.demo.images = 120;
    config.game.min_labels = 1000;
    config.game.max_labels = 1000;
    config.storage.sqlite.checkpoint_every_ms = 100;
    config.storage.sqlite.wal_limit_mib = 1;
    let app = spawn_app(config).await;
    let wal = dir.path().join("emofy.db-wal");
    let size = || std::fs::metadata(&wal).map(|m| m.len()).unwrap_or(0);
    let mut bots = Vec::new();
    for i in 0..12 {
        bots.push(Bot::join(&app.ws(), &format!("bot{i}")).await);
    }
    let mut largest = size();
    let mut answers = 0;
    // Every bot answers every image: 12 × 120 answers, each its own commit or a few together.
    loop {
        let mut any = false;
        for bot in &mut bots {
            if let Some(round) = bot.next_round().await {
                bot.answer(&round, "happy").await;
                answers += 1;
                any = true;
            }
        }
        largest = largest.max(size());
        if !any {
            break;
        }
    }
    assert_eq!(answers, 12 * 120);
    // This run writes a few hundred MiB of WAL frames (each answer its own
    // commit); without checkpoints that would all be the file's size. Bounded
    // means: at most twice the limit (the writer restarts the WAL past it,
    // however busy the machine) plus one commit.
    assert!(
        largest <= 3 << 20,
        "the WAL reached {} KiB during {answers} answers",
        largest >> 10
    );
    app.stop().await;
}

/// On MongoDB the bytes' documents are removed in the deletion's transaction,
/// and no other document holds them (the driver's view; what the server's
/// storage engine, journal and oplog keep is in docs/operations.md).
#[actix_rt::test]
async fn on_mongodb_a_deleted_upload_leaves_no_document_with_its_bytes() {
    use emofy_server::store::UploadStore;
    use futures_util::TryStreamExt;
    let uri = crate::common::mongo_uri();
    let db_name = format!("emofy_erase_{}", uuid::Uuid::new_v4().simple());
    let store = emofy_server::store::mongo::MongoStore::connect(&uri, &db_name, false)
        .await
        .unwrap();
    let alice = emofy_game::PlayerId(uuid::Uuid::new_v4());
    let upload = crate::store_contract::upload_of(alice, 77, true);
    let crop = upload.crop.bytes.clone();
    let original = upload.original.clone().unwrap();
    let id = store
        .insert_upload(upload, emofy_game::Millis(1))
        .await
        .unwrap();
    let client = mongodb::Client::with_uri_str(&uri).await.unwrap();
    let db = client.database(&db_name);
    let scan = || async {
        let mut hits = 0;
        for name in db.list_collection_names().await.unwrap() {
            let docs: Vec<mongodb::bson::Document> = db
                .collection::<mongodb::bson::Document>(&name)
                .find(mongodb::bson::doc! {})
                .await
                .unwrap()
                .try_collect()
                .await
                .unwrap();
            for d in docs {
                let raw = mongodb::bson::to_vec(&d).unwrap();
                for bytes in [&crop, &original] {
                    if memchr::memmem::find(&raw, bytes).is_some() {
                        hits += 1;
                    }
                }
            }
        }
        hits
    };
    assert_eq!(scan().await, 2, "the crop and the original are stored");
    assert!(
        store
            .delete_upload(alice, id, emofy_game::Millis(2))
            .await
            .unwrap()
    );
    assert_eq!(scan().await, 0, "no document holds the erased bytes");
    db.drop().await.unwrap();
}
