//! Images, their bytes, predictions, the pool's entries and counts.

use super::SqliteStore;
use super::codec::*;
use super::prelude::*;

#[async_trait]
impl ImageStore for SqliteStore {
    async fn insert_image(
        &self,
        image: NewImage,
        at: Millis,
    ) -> Result<(ImageId, bool), StoreError> {
        let id = ImageId::of_bytes(&image.bytes);
        self.write(move |c| {
            let hex = id.to_hex();
            let exists: Option<i64> = c
                .query_row("SELECT 1 FROM images WHERE id = ?1", params![hex], |r| r.get(0))
                .optional()
                .map_err(db_err)?;
            if exists.is_some() {
                return Ok((id, false));
            }
            exec(
                c,
                "INSERT OR IGNORE INTO image_blobs (id, bytes) VALUES (?1, ?2)",
                params![hex, image.bytes],
            )
            .map_err(db_err)?;
            exec(
                c,
                "INSERT INTO images (id, mime, width, height, source, source_label, uploader, created_ms, updated_ms) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?8)",
                params![
                    hex,
                    image.mime,
                    image.width,
                    image.height,
                    image.source.as_str(),
                    image.source_label.map(|e| e.as_str()),
                    image.uploader.map(|p| p.to_string()),
                    i64_of(at.0)
                ],
            )
            .map_err(db_err)?;
            Ok((id, true))
        })
        .await
    }

    async fn image_bytes(&self, id: ImageId) -> Result<Option<(Vec<u8>, String)>, StoreError> {
        self.read(move |c| {
            qrow(
                c,
                "SELECT b.bytes, i.mime FROM images i JOIN image_blobs b ON b.id = i.id WHERE i.id = ?1 AND i.status != 'removed'",
                params![id.to_hex()],
                |r| Ok((r.get::<_, Vec<u8>>(0)?, r.get::<_, String>(1)?)),
            )
            .optional()
            .map_err(db_err)
        })
        .await
    }

    async fn image_meta(&self, id: ImageId) -> Result<Option<ImageMeta>, StoreError> {
        self.read(move |c| {
            let row = c
                .query_row(
                    &format!("SELECT {META_COLUMNS} FROM images WHERE id = ?1"),
                    params![id.to_hex()],
                    meta_row,
                )
                .optional()
                .map_err(db_err)?;
            row.map(|row| meta_record(id, row)).transpose()
        })
        .await
    }

    async fn image_metas(
        &self,
        images: &[ImageId],
    ) -> Result<HashMap<ImageId, ImageMeta>, StoreError> {
        let images = images.to_vec();
        self.read(move |c| {
            let mut st = c
                .prepare_cached(&format!("SELECT {META_COLUMNS} FROM images WHERE id = ?1"))
                .map_err(db_err)?;
            let mut out = HashMap::new();
            for id in images {
                if let Some(row) = st
                    .query_row(params![id.to_hex()], meta_row)
                    .optional()
                    .map_err(db_err)?
                {
                    out.insert(id, meta_record(id, row)?);
                }
            }
            Ok(out)
        })
        .await
    }

    async fn pool_entries(&self, since: Millis) -> Result<Vec<PoolEntry>, StoreError> {
        self.read(move |c| {
            let mut st = c
                .prepare("SELECT id, uploader, votes, status, consensus, posterior, model_guess FROM images WHERE updated_ms >= ?1 AND (playable = 1 OR status = 'removed')")
                .map_err(db_err)?;
            let rows = st
                .query_map(params![i64_of(since.0)], |r| {
                    Ok((
                        r.get::<_, String>(0)?,
                        r.get::<_, Option<String>>(1)?,
                        r.get::<_, String>(2)?,
                        r.get::<_, String>(3)?,
                        r.get::<_, Option<String>>(4)?,
                        r.get::<_, Option<String>>(5)?,
                        r.get::<_, Option<String>>(6)?,
                    ))
                })
                .map_err(db_err)?;
            let mut out = Vec::new();
            for row in rows {
                let (id, uploader, votes, status, consensus, posterior, guess) = row.map_err(db_err)?;
                out.push(PoolEntry {
                    image: parse_id(&id)?,
                    uploader: uploader.map(|u| parse_id(&u)).transpose()?,
                    votes: votes_from_json(&votes)?,
                    status: status_from(&status, parse_emotion(consensus)?)?,
                    leading: truth::leading(truth::posterior_from(posterior.as_deref())),
                    model_guess: parse_emotion(guess)?,
                });
            }
            Ok(out)
        })
        .await
    }

    async fn image_count(&self) -> Result<u64, StoreError> {
        self.read(|c| {
            qrow(c, "SELECT COUNT(*) FROM images", [], |r| r.get::<_, i64>(0))
                .map(u64_of)
                .map_err(db_err)
        })
        .await
    }

    async fn save_predictions(
        &self,
        predictions: Vec<(ImageId, Prediction)>,
    ) -> Result<(), StoreError> {
        let at = i64_of(now_ms().0);
        self.write(move |c| {
            for (id, p) in &predictions {
                let probs = serde_json::to_string(&p.probabilities).map_err(|e| StoreError::Corrupt(e.to_string()))?;
                exec(
                    c,
                    "INSERT OR REPLACE INTO predictions (image_id, model, probabilities, created_ms) VALUES (?1, ?2, ?3, ?4)",
                    params![id.to_hex(), p.model, probs, at],
                )
                .map_err(db_err)?;
            }
            Ok(())
        })
        .await
    }

    async fn prediction(&self, id: ImageId, model: &str) -> Result<Option<Prediction>, StoreError> {
        let model = model.to_owned();
        self.read(move |c| prediction_of(c, id, &model)).await
    }

    async fn predictions_of(
        &self,
        images: &[ImageId],
        model: &str,
    ) -> Result<HashMap<ImageId, Prediction>, StoreError> {
        let images = images.to_vec();
        let model = model.to_owned();
        self.read(move |c| {
            let mut out = HashMap::new();
            for image in images {
                if let Some(p) = prediction_of(c, image, &model)? {
                    out.insert(image, p);
                }
            }
            Ok(out)
        })
        .await
    }

    async fn predictions(&self, model: &str) -> Result<Vec<(ImageId, Prediction)>, StoreError> {
        let model = model.to_owned();
        self.read(move |c| {
            let mut st = c
                .prepare("SELECT image_id, probabilities FROM predictions WHERE model = ?1")
                .map_err(db_err)?;
            let rows = st
                .query_map(params![model], |r| {
                    Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?))
                })
                .map_err(db_err)?;
            let mut out = Vec::new();
            for row in rows {
                let (id, probs) = row.map_err(db_err)?;
                let probs: [f32; 7] = serde_json::from_str(&probs)
                    .map_err(|e| StoreError::Corrupt(format!("prediction: {e}")))?;
                let p = Prediction::new(model.clone(), probs)
                    .map_err(|e| StoreError::Corrupt(e.to_string()))?;
                out.push((parse_id(&id)?, p));
            }
            Ok(out)
        })
        .await
    }

    async fn unpredicted_images(&self, model: &str) -> Result<Vec<ImageId>, StoreError> {
        let model = model.to_owned();
        self.read(move |c| {
            ids(
                c,
                "SELECT i.id FROM images i LEFT JOIN predictions p ON p.image_id = i.id AND p.model = ?1 \
                 WHERE p.image_id IS NULL AND i.status != 'removed'",
                params![model],
            )
        })
        .await
    }

    async fn all_images(
        &self,
        after: Option<ImageId>,
        limit: usize,
    ) -> Result<Vec<ImageMeta>, StoreError> {
        let ids: Vec<ImageId> = self
            .read(move |c| {
                let mut st = c
                    .prepare(
                        "SELECT id FROM images WHERE ?1 IS NULL OR id > ?1 ORDER BY id LIMIT ?2",
                    )
                    .map_err(db_err)?;
                let rows = st
                    .query_map(
                        params![after.map(|a| a.to_hex()), i64_of(limit as u64)],
                        |r| r.get::<_, String>(0),
                    )
                    .map_err(db_err)?;
                let mut out = Vec::new();
                for r in rows {
                    out.push(parse_id(&r.map_err(db_err)?)?);
                }
                Ok(out)
            })
            .await?;
        let mut out = Vec::with_capacity(ids.len());
        for id in ids {
            if let Some(m) = self.image_meta(id).await? {
                out.push(m);
            }
        }
        Ok(out)
    }

    async fn gold_images(&self) -> Result<Vec<ImageId>, StoreError> {
        self.read(|c| {
            ids(
                c,
                "SELECT id FROM images WHERE gold IS NOT NULL AND status != 'removed' AND playable = 1",
                [],
            )
        })
        .await
    }

    async fn restore_tally(
        &self,
        id: ImageId,
        votes: VoteCounts,
        status: ImageStatus,
        at: Millis,
    ) -> Result<(), StoreError> {
        self.write(move |c| {
            let n = exec(
                c,
                "UPDATE images SET votes = ?2, status = ?3, consensus = ?4, updated_ms = ?5 WHERE id = ?1",
                params![id.to_hex(), votes_to_json(&votes), status.name(), consensus_of(&status), i64_of(at.0)],
            )
            .map_err(db_err)?;
            if n == 0 {
                return Err(StoreError::NotFound(format!("image {id}")));
            }
            Ok(())
        })
        .await
    }

    async fn stats(&self) -> Result<Stats, StoreError> {
        self.read(|c| {
            let count = |sql: &str| -> Result<u64, StoreError> {
                qrow(c, sql, [], |r| r.get::<_, i64>(0))
                    .map(u64_of)
                    .map_err(db_err)
            };
            let mut s = Stats {
                players: count("SELECT COUNT(*) FROM players")?,
                images: count("SELECT COUNT(*) FROM images")?,
                labels: count("SELECT COUNT(*) FROM labels")?,
                rounds: count("SELECT COUNT(*) FROM rounds")?,
                ..Stats::default()
            };
            let mut st = c
                .prepare("SELECT status, COUNT(*) FROM images GROUP BY status")
                .map_err(db_err)?;
            let rows = st
                .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))
                .map_err(db_err)?;
            for row in rows {
                let (status, n) = row.map_err(db_err)?;
                let n = u64_of(n);
                match status.as_str() {
                    "open" => s.open = n,
                    "retired" => s.retired = n,
                    "disputed" => s.disputed = n,
                    "removed" => s.removed = n,
                    other => return Err(StoreError::Corrupt(format!("bad status {other:?}"))),
                }
            }
            Ok(s)
        })
        .await
    }
}

/// `model`'s cached prediction for one image.
fn prediction_of(
    c: &Connection,
    id: ImageId,
    model: &str,
) -> Result<Option<Prediction>, StoreError> {
    let probs: Option<String> = c
        .prepare_cached("SELECT probabilities FROM predictions WHERE image_id = ?1 AND model = ?2")
        .and_then(|mut st| {
            st.query_row(params![id.to_hex(), model], |r| r.get(0))
                .optional()
        })
        .map_err(db_err)?;
    probs
        .map(|probs| {
            let probs: [f32; 7] = serde_json::from_str(&probs)
                .map_err(|e| StoreError::Corrupt(format!("prediction: {e}")))?;
            Prediction::new(model.to_owned(), probs).map_err(|e| StoreError::Corrupt(e.to_string()))
        })
        .transpose()
}

/// The columns [`meta_row`] reads, in its order.
pub(super) const META_COLUMNS: &str = "mime, width, height, source, source_label, uploader, votes, status, consensus, created_ms, posterior, gold";

type MetaRow = (
    String,
    u32,
    u32,
    String,
    Option<String>,
    Option<String>,
    String,
    String,
    Option<String>,
    i64,
    Option<String>,
    Option<String>,
);

/// [`META_COLUMNS`], from the row's first column on (later columns are the caller's).
pub(super) fn meta_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<MetaRow> {
    MetaRow::try_from(r)
}

pub(super) fn meta_record(id: ImageId, row: MetaRow) -> Result<ImageMeta, StoreError> {
    let (
        mime,
        width,
        height,
        source,
        source_label,
        uploader,
        votes,
        status,
        consensus,
        created,
        posterior,
        gold,
    ) = row;
    Ok(ImageMeta {
        id,
        mime,
        width,
        height,
        source: ImageSource::parse(&source)
            .ok_or_else(|| StoreError::Corrupt(format!("bad source {source:?}")))?,
        source_label: parse_emotion(source_label)?,
        uploader: uploader.map(|u| parse_id(&u)).transpose()?,
        votes: votes_from_json(&votes)?,
        status: status_from(&status, parse_emotion(consensus)?)?,
        created: Millis(u64_of(created)),
        posterior: truth::posterior_from(posterior.as_deref()),
        gold: parse_emotion(gold)?,
    })
}
