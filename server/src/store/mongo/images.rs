//! Images, their bytes, predictions, the pool's entries and counts.

use super::MongoStore;
use super::codec::*;
use super::prelude::*;

#[async_trait]
impl ImageStore for MongoStore {
    async fn insert_image(
        &self,
        image: NewImage,
        at: Millis,
    ) -> Result<(ImageId, bool), StoreError> {
        let id = ImageId::of_bytes(&image.bytes);
        let hex = id.to_hex();
        if self
            .coll("images")
            .find_one(doc! {"_id": &hex})
            .await
            .map_err(err)?
            .is_some()
        {
            return Ok((id, false));
        }
        // Bytes first (idempotent), then the metadata that makes the image visible.
        match self
            .coll("image_bytes")
            .insert_one(doc! {"_id": &hex, "bytes": binary(image.bytes.clone())})
            .await
        {
            Ok(_) => {}
            Err(e) if is_duplicate(&e) => {}
            Err(e) => return Err(err(e)),
        }
        match self
            .coll("images")
            .insert_one(image_doc(id, &image, at, true))
            .await
        {
            Ok(_) => Ok((id, true)),
            Err(e) if is_duplicate(&e) => Ok((id, false)),
            Err(e) => Err(err(e)),
        }
    }

    async fn image_bytes(&self, id: ImageId) -> Result<Option<(Vec<u8>, String)>, StoreError> {
        let hex = id.to_hex();
        let Some(meta) = self
            .coll("images")
            .find_one(doc! {"_id": &hex, "status": {"$ne": "removed"}})
            .await
            .map_err(err)?
        else {
            return Ok(None);
        };
        let bytes = self
            .coll("image_bytes")
            .find_one(doc! {"_id": &hex})
            .await
            .map_err(err)?
            .and_then(|d| bytes_of(&d, "bytes"));
        Ok(bytes.map(|b| (b, opt_str(&meta, "mime").unwrap_or_default())))
    }

    async fn image_meta(&self, id: ImageId) -> Result<Option<ImageMeta>, StoreError> {
        let Some(d) = self
            .coll("images")
            .find_one(doc! {"_id": id.to_hex()})
            .await
            .map_err(err)?
        else {
            return Ok(None);
        };
        meta_of(id, &d).map(Some)
    }

    async fn image_metas(
        &self,
        images: &[ImageId],
    ) -> Result<HashMap<ImageId, ImageMeta>, StoreError> {
        let mut out = HashMap::new();
        for chunk in images.chunks(1_000) {
            let ids: Vec<String> = chunk.iter().map(|id| id.to_hex()).collect();
            for d in all(self.coll("images").find(doc! {"_id": {"$in": ids}})).await? {
                let id = parse_id(get_str(&d, "_id")?)?;
                out.insert(id, meta_of(id, &d)?);
            }
        }
        Ok(out)
    }

    async fn pool_entries(&self, since: Millis) -> Result<Vec<PoolEntry>, StoreError> {
        let docs: Vec<Document> = all(self
            .coll("images")
            .find(doc! {
                "updated_ms": {"$gte": i64_of(since.0)},
                "$or": [{"playable": true}, {"status": "removed"}],
            })
            .projection(doc! {
                "uploader": 1, "votes": 1, "status": 1, "consensus": 1, "posterior": 1, "model_guess": 1,
            }))
        .await?;
        docs.iter().map(pool_entry).collect()
    }

    async fn image_count(&self) -> Result<u64, StoreError> {
        self.coll("images")
            .count_documents(doc! {})
            .await
            .map_err(err)
    }

    async fn save_predictions(
        &self,
        predictions: Vec<(ImageId, Prediction)>,
    ) -> Result<(), StoreError> {
        let at = i64_of(crate::clock::now().0);
        for (id, p) in predictions {
            let probs: Vec<Bson> = p
                .probabilities
                .iter()
                .map(|v| Bson::Double(f64::from(*v)))
                .collect();
            self.coll("predictions")
                .replace_one(
                    doc! {"_id": format!("{}:{}", id.to_hex(), p.model)},
                    doc! {"image_id": id.to_hex(), "model": &p.model, "probabilities": probs, "created_ms": at},
                )
                .upsert(true)
                .await
                .map_err(err)?;
        }
        Ok(())
    }

    async fn prediction(&self, id: ImageId, model: &str) -> Result<Option<Prediction>, StoreError> {
        self.coll("predictions")
            .find_one(doc! {"_id": format!("{}:{model}", id.to_hex())})
            .await
            .map_err(err)?
            .map(|d| prediction_of(&d, model))
            .transpose()
    }

    async fn predictions_of(
        &self,
        images: &[ImageId],
        model: &str,
    ) -> Result<HashMap<ImageId, Prediction>, StoreError> {
        let mut out = HashMap::new();
        for chunk in images.chunks(1_000) {
            let ids: Vec<String> = chunk
                .iter()
                .map(|id| format!("{}:{model}", id.to_hex()))
                .collect();
            for d in all(self.coll("predictions").find(doc! {"_id": {"$in": ids}})).await? {
                out.insert(
                    parse_id(get_str(&d, "image_id")?)?,
                    prediction_of(&d, model)?,
                );
            }
        }
        Ok(out)
    }

    async fn predictions(&self, model: &str) -> Result<Vec<(ImageId, Prediction)>, StoreError> {
        let docs: Vec<Document> = all(self.coll("predictions").find(doc! {"model": model})).await?;
        docs.iter()
            .map(|d| Ok((parse_id(get_str(d, "image_id")?)?, prediction_of(d, model)?)))
            .collect()
    }

    async fn unpredicted_images(&self, model: &str) -> Result<Vec<ImageId>, StoreError> {
        let done: std::collections::HashSet<String> = self
            .coll("predictions")
            .find(doc! {"model": model})
            .projection(doc! {"image_id": 1})
            .await
            .map_err(err)?
            .try_collect::<Vec<Document>>()
            .await
            .map_err(err)?
            .iter()
            .filter_map(|d| opt_str(d, "image_id"))
            .collect();
        let images: Vec<Document> = all(self
            .coll("images")
            .find(doc! {"status": {"$ne": "removed"}})
            .projection(doc! {"_id": 1}))
        .await?;
        images
            .iter()
            .filter_map(|d| opt_str(d, "_id"))
            .filter(|id| !done.contains(id))
            .map(|id| parse_id(&id))
            .collect()
    }

    async fn all_images(
        &self,
        after: Option<ImageId>,
        limit: usize,
    ) -> Result<Vec<ImageMeta>, StoreError> {
        let filter = match after {
            Some(a) => doc! {"_id": {"$gt": a.to_hex()}},
            None => doc! {},
        };
        let docs: Vec<Document> = all(self
            .coll("images")
            .find(filter)
            .sort(doc! {"_id": 1})
            .limit(i64::try_from(limit).unwrap_or(i64::MAX))
            .projection(doc! {"_id": 1}))
        .await?;
        let mut out = Vec::with_capacity(docs.len());
        for d in &docs {
            if let Some(m) = self.image_meta(parse_id(get_str(d, "_id")?)?).await? {
                out.push(m);
            }
        }
        Ok(out)
    }

    async fn gold_images(&self) -> Result<Vec<ImageId>, StoreError> {
        let docs = all(self.coll("images").find(doc! {
            "gold": {"$ne": Bson::Null}, "status": {"$ne": "removed"}, "playable": {"$ne": false},
        }))
        .await?;
        docs.iter()
            .map(|d| get_str(d, "_id").and_then(parse_id))
            .collect()
    }

    async fn restore_tally(
        &self,
        id: ImageId,
        votes: VoteCounts,
        status: ImageStatus,
        at: Millis,
    ) -> Result<(), StoreError> {
        let r = self
            .coll("images")
            .update_one(
                doc! {"_id": id.to_hex()},
                doc! {"$set": {"votes": votes_bson(&votes), "status": status.name(),
                "consensus": consensus_bson(&status), "updated_ms": i64_of(at.0)}},
            )
            .await
            .map_err(err)?;
        if r.matched_count == 0 {
            return Err(StoreError::NotFound(format!("image {id}")));
        }
        Ok(())
    }

    async fn stats(&self) -> Result<Stats, StoreError> {
        let count = |c: &str, f: Document| {
            let coll = self.coll(c);
            async move { coll.count_documents(f).await.map_err(err) }
        };
        Ok(Stats {
            players: count("players", doc! {}).await?,
            images: count("images", doc! {}).await?,
            open: count("images", doc! {"status": "open"}).await?,
            retired: count("images", doc! {"status": "retired"}).await?,
            disputed: count("images", doc! {"status": "disputed"}).await?,
            removed: count("images", doc! {"status": "removed"}).await?,
            labels: count("labels", doc! {}).await?,
            rounds: count("rounds", doc! {}).await?,
        })
    }
}

/// An image document's metadata.
pub(super) fn meta_of(id: ImageId, d: &Document) -> Result<ImageMeta, StoreError> {
    let source = get_str(d, "source")?;
    Ok(ImageMeta {
        id,
        mime: get_str(d, "mime")?.to_owned(),
        width: get_u32(d, "width")?,
        height: get_u32(d, "height")?,
        source: ImageSource::parse(source)
            .ok_or_else(|| corrupt(format!("bad source {source:?}")))?,
        source_label: emotion(opt_str(d, "source_label"))?,
        uploader: opt_str(d, "uploader").map(|u| parse_id(&u)).transpose()?,
        votes: votes_of(d)?,
        status: status_of(d)?,
        created: Millis(get_u64(d, "created_ms")?),
        posterior: truth::posterior_from(opt_str(d, "posterior").as_deref()),
        gold: emotion(opt_str(d, "gold"))?,
    })
}
