//! Contributed photos, consent records, erasure.

use super::MongoStore;
use super::codec::*;
use super::prelude::*;
use super::tx::*;

impl MongoStore {
    async fn upload_view(&self, u: &Document) -> Result<UploadRecord, StoreError> {
        let id = get_str(u, "_id")?;
        let image = self
            .coll("images")
            .find_one(doc! {"_id": id})
            .await
            .map_err(err)?
            .ok_or_else(|| corrupt("upload without image"))?;
        let label = self
            .coll("labels")
            .find_one(doc! {"image_id": id, "player_id": get_str(u, "player_id")?})
            .await
            .map_err(err)?
            .and_then(|l| opt_str(&l, "emotion"));
        upload_record(u, &image, emotion(label)?)
    }
}

#[async_trait]
impl UploadStore for MongoStore {
    async fn consent_log(&self, image: ImageId) -> Result<Vec<ConsentEvent>, StoreError> {
        let docs: Vec<Document> = all(self
            .coll("consent_log")
            .find(doc! {"image_id": image.to_hex()})
            .sort(doc! {"at_ms": 1, "_id": 1}))
        .await?;
        docs.iter()
            .map(|d| {
                Ok(ConsentEvent {
                    image,
                    player: parse_id(get_str(d, "player_id")?)?,
                    event: get_str(d, "event")?.to_owned(),
                    consent: Consent {
                        show_to_players: get_bool(d, "show_to_players"),
                        use_for_training: get_bool(d, "use_for_training"),
                        include_in_exports: get_bool(d, "include_in_exports"),
                        keep_original: get_bool(d, "keep_original"),
                        text_version: get_str(d, "consent_version")?.to_owned(),
                    },
                    at: Millis(get_u64(d, "at_ms")?),
                })
            })
            .collect()
    }

    async fn insert_upload(&self, u: NewUpload, at: Millis) -> Result<ImageId, StoreError> {
        let id = ImageId::of_bytes(&u.crop.bytes);
        let hex = id.to_hex();
        let ms = i64_of(at.0);
        let playable = u.consent.show_to_players;
        let stored = transaction!(self, self.limits.transaction_deadline, |s| {
            let duplicate = self
                .coll("uploads")
                .find_one(doc! {"player_id": u.player.to_string(), "fingerprint": &u.fingerprint, "deleted_ms": Bson::Null})
                .session(&mut *s)
                .await?;
            if duplicate.is_some() {
                return Ok(false);
            }
            let existing = self
                .coll("images")
                .find_one(doc! {"_id": &hex})
                .session(&mut *s)
                .await?;
            let status = existing.as_ref().and_then(|d| opt_str(d, "status"));
            // A stored image that is not removed: someone else's face, or this one already.
            if status.as_deref().is_some_and(|st| st != "removed") {
                return Ok(false);
            }
            self.coll("image_bytes")
                .replace_one(
                    doc! {"_id": &hex},
                    doc! {"bytes": binary(u.crop.bytes.clone())},
                )
                .upsert(true)
                .session(&mut *s)
                .await?;
            if status.is_none() {
                self.coll("images")
                    .insert_one(image_doc(id, &u.crop, at, playable))
                    .session(&mut *s)
                    .await?;
            } else {
                self.coll("images")
                    .update_one(
                        doc! {"_id": &hex},
                        doc! {"$set": {"status": "open", "consensus": Bson::Null,
                        "uploader": u.player.to_string(), "updated_ms": ms, "playable": playable}},
                    )
                    .session(&mut *s)
                    .await?;
                self.coll("uploads")
                    .delete_one(doc! {"_id": &hex})
                    .session(&mut *s)
                    .await?;
            }
            let f = &u.face;
            self.coll("uploads")
                .insert_one(doc! {
                    "_id": &hex, "player_id": u.player.to_string(), "created_ms": ms,
                    "face": {"x": i64::from(f.x), "y": i64::from(f.y), "w": i64::from(f.w), "h": i64::from(f.h), "score": f.score},
                    "show_to_players": u.consent.show_to_players,
                    "use_for_training": u.consent.use_for_training,
                    "include_in_exports": u.consent.include_in_exports,
                    "keep_original": u.consent.keep_original,
                    "consent_version": &u.consent.text_version,
                    "consent_ms": ms,
                    "original": u.original.clone().map(binary),
                    "deleted_ms": Bson::Null,
                    "fingerprint": &u.fingerprint,
                })
                .session(&mut *s)
                .await?;
            self.coll("consent_log")
                .insert_one(consent_event(
                    &hex,
                    &u.player.to_string(),
                    "given",
                    &u.consent,
                    ms,
                ))
                .session(&mut *s)
                .await?;
            Ok::<_, StoreError>(true)
        });
        if stored? {
            Ok(id)
        } else {
            Err(StoreError::Conflict(format!(
                "image {id} is already stored"
            )))
        }
    }

    async fn upload_access(&self, image: ImageId) -> Result<Option<UploadAccess>, StoreError> {
        let found = self
            .coll("uploads")
            .find_one(doc! {"_id": image.to_hex(), "deleted_ms": Bson::Null})
            .await
            .map_err(err)?;
        found
            .map(|d| {
                Ok(UploadAccess {
                    contributor: opt_str(&d, "player_id")
                        .ok_or_else(|| StoreError::Corrupt("upload without player_id".into()))?
                        .parse()
                        .map_err(|_| StoreError::Corrupt("bad player_id".into()))?,
                    show_to_players: get_bool(&d, "show_to_players"),
                })
            })
            .transpose()
    }

    async fn export_allowed(&self, image: ImageId) -> Result<bool, StoreError> {
        Ok(self
            .coll("uploads")
            .count_documents(
                doc! {"_id": image.to_hex(), "include_in_exports": true, "deleted_ms": Bson::Null},
            )
            .await
            .map_err(err)?
            > 0)
    }

    async fn training_allowed(&self, image: ImageId) -> Result<bool, StoreError> {
        Ok(self
            .coll("uploads")
            .count_documents(
                doc! {"_id": image.to_hex(), "use_for_training": true, "deleted_ms": Bson::Null},
            )
            .await
            .map_err(err)?
            > 0)
    }

    async fn uploads_since(&self, player: PlayerId, since: Millis) -> Result<u64, StoreError> {
        self.coll("uploads")
            .count_documents(
                doc! {"player_id": player.to_string(), "created_ms": {"$gte": i64_of(since.0)}},
            )
            .await
            .map_err(err)
    }

    async fn upload(
        &self,
        player: PlayerId,
        image: ImageId,
    ) -> Result<Option<UploadRecord>, StoreError> {
        let Some(u) = self
            .coll("uploads")
            .find_one(doc! {"_id": image.to_hex(), "player_id": player.to_string(), "deleted_ms": Bson::Null})
            .await
            .map_err(err)?
        else {
            return Ok(None);
        };
        Ok(Some(self.upload_view(&u).await?))
    }

    async fn uploads(
        &self,
        player: PlayerId,
        cursor: Option<UploadCursor>,
        limit: usize,
    ) -> Result<Vec<UploadRecord>, StoreError> {
        let mut filter = doc! {"player_id": player.to_string(), "deleted_ms": Bson::Null};
        if let Some(c) = cursor {
            older_than(&mut filter, i64_of(c.created.0), c.image.to_hex());
        }
        let docs: Vec<Document> = all(self
            .coll("uploads")
            .find(filter)
            .sort(doc! {"created_ms": -1, "_id": -1})
            .limit(i64::try_from(limit).unwrap_or(i64::MAX)))
        .await?;
        let mut out = Vec::with_capacity(docs.len());
        for u in &docs {
            out.push(self.upload_view(u).await?);
        }
        Ok(out)
    }

    async fn delete_upload(
        &self,
        player: PlayerId,
        image: ImageId,
        at: Millis,
    ) -> Result<bool, StoreError> {
        let hex = image.to_hex();
        let ms = i64_of(at.0);
        transaction!(self, self.limits.transaction_deadline, |s| {
            let r = self
                .coll("uploads")
                .update_one(
                    doc! {"_id": &hex, "player_id": player.to_string(), "deleted_ms": Bson::Null},
                    doc! {"$set": {"original": Bson::Null, "fingerprint": Bson::Null, "deleted_ms": ms}},
                )
                .session(&mut *s)
                .await?;
            if r.matched_count == 0 {
                return Ok(false);
            }
            if let Some(u) = self
                .coll("uploads")
                .find_one(doc! {"_id": &hex})
                .session(&mut *s)
                .await?
            {
                let consent = Consent {
                    show_to_players: get_bool(&u, "show_to_players"),
                    use_for_training: get_bool(&u, "use_for_training"),
                    include_in_exports: get_bool(&u, "include_in_exports"),
                    keep_original: get_bool(&u, "keep_original"),
                    text_version: opt_str(&u, "consent_version").unwrap_or_default(),
                };
                self.coll("consent_log")
                    .insert_one(consent_event(
                        &hex,
                        &player.to_string(),
                        "revoked",
                        &consent,
                        ms,
                    ))
                    .session(&mut *s)
                    .await?;
            }
            self.coll("image_bytes")
                .delete_one(doc! {"_id": &hex})
                .session(&mut *s)
                .await?;
            self.coll("predictions")
                .delete_many(doc! {"image_id": &hex})
                .session(&mut *s)
                .await?;
            self.coll("images")
                .update_one(
                    doc! {"_id": &hex},
                    doc! {"$set": {"status": "removed", "consensus": Bson::Null, "playable": false, "updated_ms": ms}},
                )
                .session(&mut *s)
                .await?;
            Ok::<_, StoreError>(true)
        })
    }
}
