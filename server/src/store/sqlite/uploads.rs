//! Contributed photos, consent records, erasure.

use super::SqliteStore;
use super::codec::*;
use super::prelude::*;

#[async_trait]
impl UploadStore for SqliteStore {
    async fn consent_log(&self, image: ImageId) -> Result<Vec<ConsentEvent>, StoreError> {
        self.read(move |c| {
            let mut st = c
                .prepare_cached(
                    "SELECT player_id, event, show_to_players, use_for_training, include_in_exports, \
                     keep_original, consent_version, at_ms FROM consent_log WHERE image_id = ?1 ORDER BY id",
                )
                .map_err(db_err)?;
            let rows = st
                .query_map(params![image.to_hex()], |r| {
                    Ok((
                        r.get::<_, String>(0)?,
                        r.get::<_, String>(1)?,
                        r.get::<_, bool>(2)?,
                        r.get::<_, bool>(3)?,
                        r.get::<_, bool>(4)?,
                        r.get::<_, bool>(5)?,
                        r.get::<_, String>(6)?,
                        r.get::<_, i64>(7)?,
                    ))
                })
                .map_err(db_err)?;
            let mut out = Vec::new();
            for row in rows {
                let (player, event, show, train, export, keep, version, at) = row.map_err(db_err)?;
                out.push(ConsentEvent {
                    image,
                    player: parse_id(&player)?,
                    event,
                    consent: Consent {
                        show_to_players: show,
                        use_for_training: train,
                        include_in_exports: export,
                        keep_original: keep,
                        text_version: version,
                    },
                    at: Millis(u64_of(at)),
                });
            }
            Ok(out)
        })
        .await
    }

    async fn insert_upload(&self, u: NewUpload, at: Millis) -> Result<ImageId, StoreError> {
        let id = ImageId::of_bytes(&u.crop.bytes);
        self.write(move |c| {
            let hex = id.to_hex();
            let duplicate: Option<i64> = qrow(
                c,
                "SELECT 1 FROM uploads WHERE player_id = ?1 AND fingerprint = ?2 AND deleted_ms IS NULL",
                params![u.player.to_string(), u.fingerprint],
                |r| r.get(0),
            )
            .optional()
            .map_err(db_err)?;
            if duplicate.is_some() {
                return Err(StoreError::Conflict("this contributor stored this face already".into()));
            }
            let existing: Option<String> = c
                .query_row("SELECT status FROM images WHERE id = ?1", params![hex], |r| r.get(0))
                .optional()
                .map_err(db_err)?;
            let ms = i64_of(at.0);
            let playable = u.consent.show_to_players;
            match existing.as_deref() {
                None => {
                    exec(c, "INSERT INTO image_blobs (id, bytes) VALUES (?1, ?2)", params![hex, u.crop.bytes])
                        .map_err(db_err)?;
                    exec(
                        c,
                        "INSERT INTO images (id, mime, width, height, source, uploader, created_ms, updated_ms, playable) \
                         VALUES (?1, ?2, ?3, ?4, 'upload', ?5, ?6, ?6, ?7)",
                        params![hex, u.crop.mime, u.crop.width, u.crop.height, u.player.to_string(), ms, playable],
                    )
                    .map_err(db_err)?;
                }
                // The same face crop, deleted before: stored again under the new consent.
                Some("removed") => {
                    exec(c, "UPDATE image_blobs SET bytes = ?2 WHERE id = ?1", params![hex, u.crop.bytes])
                        .map_err(db_err)?;
                    exec(
                        c,
                        "UPDATE images SET status = 'open', consensus = NULL, uploader = ?2, updated_ms = ?3, playable = ?4 WHERE id = ?1",
                        params![hex, u.player.to_string(), ms, playable],
                    )
                    .map_err(db_err)?;
                    exec(c, "DELETE FROM uploads WHERE image_id = ?1", params![hex]).map_err(db_err)?;
                }
                Some(_) => {
                    return Err(StoreError::Conflict(format!("image {id} is already stored")));
                }
            }
            let f = &u.face;
            let face = serde_json::to_string(&[f64::from(f.x), f64::from(f.y), f64::from(f.w), f64::from(f.h), f.score])
                .map_err(|e| StoreError::Corrupt(e.to_string()))?;
            exec(
                c,
                "INSERT INTO uploads (image_id, player_id, created_ms, face, show_to_players, use_for_training, \
                 include_in_exports, keep_original, consent_version, consent_ms, original, fingerprint) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?3, ?10, ?11)",
                params![
                    hex,
                    u.player.to_string(),
                    ms,
                    face,
                    u.consent.show_to_players,
                    u.consent.use_for_training,
                    u.consent.include_in_exports,
                    u.consent.keep_original,
                    u.consent.text_version,
                    u.original,
                    u.fingerprint
                ],
            )
            .map_err(db_err)?;
            log_consent(c, &hex, &u.player.to_string(), "given", &u.consent, ms)?;
            Ok(id)
        })
        .await
    }

    async fn upload_access(&self, image: ImageId) -> Result<Option<UploadAccess>, StoreError> {
        let row: Option<(String, bool)> = self
            .read(move |c| {
                qrow(
                    c,
                    "SELECT player_id, show_to_players FROM uploads WHERE image_id = ?1 AND deleted_ms IS NULL",
                    params![image.to_hex()],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )
                .optional()
                .map_err(db_err)
            })
            .await?;
        row.map(|(p, show)| {
            Ok(UploadAccess {
                contributor: parse_id(&p)?,
                show_to_players: show,
            })
        })
        .transpose()
    }

    async fn export_allowed(&self, image: ImageId) -> Result<bool, StoreError> {
        self.read(move |c| {
            qrow(
                c,
                "SELECT COUNT(*) FROM uploads WHERE image_id = ?1 AND include_in_exports = 1 AND deleted_ms IS NULL",
                params![image.to_hex()],
                |r| r.get::<_, i64>(0),
            )
            .map(|n| n > 0)
            .map_err(db_err)
        })
        .await
    }

    async fn training_allowed(&self, image: ImageId) -> Result<bool, StoreError> {
        self.read(move |c| {
            qrow(
                c,
                "SELECT COUNT(*) FROM uploads WHERE image_id = ?1 AND use_for_training = 1 AND deleted_ms IS NULL",
                params![image.to_hex()],
                |r| r.get::<_, i64>(0),
            )
            .map(|n| n > 0)
            .map_err(db_err)
        })
        .await
    }

    async fn uploads_since(&self, player: PlayerId, since: Millis) -> Result<u64, StoreError> {
        self.read(move |c| {
            qrow(
                c,
                "SELECT COUNT(*) FROM uploads WHERE player_id = ?1 AND created_ms >= ?2",
                params![player.to_string(), i64_of(since.0)],
                |r| r.get::<_, i64>(0),
            )
            .map(u64_of)
            .map_err(db_err)
        })
        .await
    }

    async fn upload(
        &self,
        player: PlayerId,
        image: ImageId,
    ) -> Result<Option<UploadRecord>, StoreError> {
        self.read(move |c| {
            let sql = format!(
                "SELECT {UPLOAD_COLUMNS} FROM uploads u JOIN images i ON i.id = u.image_id \
                 WHERE u.image_id = ?1 AND u.player_id = ?2 AND u.deleted_ms IS NULL"
            );
            qrow(
                c,
                &sql,
                params![image.to_hex(), player.to_string()],
                upload_from_row,
            )
            .optional()
            .map_err(db_err)?
            .map(upload_record)
            .transpose()
        })
        .await
    }

    async fn uploads(
        &self,
        player: PlayerId,
        cursor: Option<UploadCursor>,
        limit: usize,
    ) -> Result<Vec<UploadRecord>, StoreError> {
        self.read(move |c| {
            let sql = format!(
                "SELECT {UPLOAD_COLUMNS} FROM uploads u JOIN images i ON i.id = u.image_id \
                 WHERE u.player_id = ?1 AND u.deleted_ms IS NULL \
                 AND (?2 IS NULL OR u.created_ms < ?2 OR (u.created_ms = ?2 AND u.image_id < ?3)) \
                 ORDER BY u.created_ms DESC, u.image_id DESC LIMIT ?4"
            );
            let mut st = c.prepare_cached(&sql).map_err(db_err)?;
            let rows = st
                .query_map(
                    params![
                        player.to_string(),
                        cursor.map(|k| i64_of(k.created.0)),
                        cursor.map(|k| k.image.to_hex()),
                        i64_of(limit as u64)
                    ],
                    upload_from_row,
                )
                .map_err(db_err)?;
            let mut out = Vec::new();
            for row in rows {
                out.push(upload_record(row.map_err(db_err)?)?);
            }
            Ok(out)
        })
        .await
    }

    async fn delete_upload(
        &self,
        player: PlayerId,
        image: ImageId,
        at: Millis,
    ) -> Result<bool, StoreError> {
        let checkpoints = self.checkpoints.clone();
        self.write(move |c| {
            let hex = image.to_hex();
            let n = exec(
                c,
                "UPDATE uploads SET original = NULL, fingerprint = NULL, deleted_ms = ?3 WHERE image_id = ?1 AND player_id = ?2 AND deleted_ms IS NULL",
                params![hex, player.to_string(), i64_of(at.0)],
            )
            .map_err(db_err)?;
            if n == 0 {
                return Ok(false);
            }
            exec(
                c,
                "INSERT INTO consent_log (image_id, player_id, event, show_to_players, use_for_training, \
                 include_in_exports, keep_original, consent_version, at_ms) \
                 SELECT image_id, player_id, 'revoked', show_to_players, use_for_training, include_in_exports, \
                 keep_original, consent_version, ?2 FROM uploads WHERE image_id = ?1",
                params![hex, i64_of(at.0)],
            )
            .map_err(db_err)?;
            // `secure_delete` overwrites the freed content in the database file.
            exec(c, "UPDATE image_blobs SET bytes = zeroblob(0) WHERE id = ?1", params![hex])
                .map_err(db_err)?;
            exec(c, "DELETE FROM predictions WHERE image_id = ?1", params![hex]).map_err(db_err)?;
            exec(
                c,
                "UPDATE images SET status = 'removed', consensus = NULL, playable = 0, updated_ms = ?2 WHERE id = ?1",
                params![hex, i64_of(at.0)],
            )
            .map_err(db_err)?;
            checkpoints.erase.store(true, Ordering::Release);
            Ok(true)
        })
        .await
    }
}
