//! Moderation (load → `plan_moderation` → apply), reliabilities, the audit
//! log, truth passes.

use super::MongoStore;
use super::codec::*;
use super::images::meta_of;
use super::prelude::*;
use super::tx::*;
use crate::store::detail_json;
use emofy_game::plan::plan_player_moderation;

async fn audit(
    store: &MongoStore,
    s: &mut ClientSession,
    moderator: PlayerId,
    action: &str,
    target: &str,
    detail: serde_json::Value,
    at: Millis,
) -> Result<(), StoreError> {
    store
        .coll("moderation_log")
        .insert_one(doc! {
            "_id": uuid::Uuid::new_v4().to_string(),
            "moderator": moderator.to_string(), "action": action, "target": target,
            "detail": detail.to_string(), "at_ms": i64_of(at.0),
        })
        .session(&mut *s)
        .await
        .map_err(err)?;
    Ok(())
}

async fn moderate_player_tx(
    store: &MongoStore,
    s: &mut ClientSession,
    player: PlayerId,
    action: PlayerAction,
    moderator: PlayerId,
    at: Millis,
) -> Result<Reliability, StoreError> {
    let id = player.to_string();
    if store
        .coll("players")
        .find_one(doc! {"_id": &id})
        .session(&mut *s)
        .await
        .map_err(err)?
        .is_none()
    {
        return Err(StoreError::NotFound(format!("player {player}")));
    }
    let plan = plan_player_moderation(
        action,
        load_reliability(store, s, &id).await?.unwrap_or_default(),
    );
    save_reliability(store, s, &id, &plan.reliability, i64_of(at.0)).await?;
    if let Some(counted) = plan.recount {
        super::rounds::mark_counted(store, s, &id, counted).await?;
    }
    let detail = detail_json(&plan.detail)?;
    audit(store, s, moderator, action.name(), &id, detail, at).await?;
    Ok(plan.reliability)
}

#[async_trait]
impl ReviewStore for MongoStore {
    async fn review_candidates(&self, limit: usize) -> Result<Vec<ReviewCandidate>, StoreError> {
        let docs = all(self
            .coll("images")
            .find(doc! {"$or": [
                {"status": "disputed"},
                {"status": "open", "votes": {"$ne": votes_bson(&VoteCounts::default())}},
            ]})
            .sort(doc! {"updated_ms": -1})
            .limit(i64::try_from(limit).unwrap_or(i64::MAX)))
        .await?;
        let mut out = Vec::with_capacity(docs.len());
        for d in docs {
            let meta = meta_of(parse_id(get_str(&d, "_id")?)?, &d)?;
            out.push(ReviewCandidate {
                posterior: meta.posterior,
                gold: meta.gold,
                model_guess: emotion(opt_str(&d, "model_guess"))?,
                meta,
            });
        }
        Ok(out)
    }

    async fn moderate_image(
        &self,
        image: ImageId,
        action: ImageAction,
        moderator: PlayerId,
        at: Millis,
        rules: &GameRules,
    ) -> Result<ModeratedImage, StoreError> {
        transaction!(self, self.limits.transaction_deadline, |s| {
            moderate_image_tx(self, s, image, &action, moderator, at, rules).await
        })
    }

    async fn moderate_player(
        &self,
        player: PlayerId,
        action: PlayerAction,
        moderator: PlayerId,
        at: Millis,
    ) -> Result<Reliability, StoreError> {
        transaction!(self, self.limits.transaction_deadline, |s| {
            moderate_player_tx(self, s, player, action, moderator, at).await
        })
    }

    async fn banned_since(&self, since: Millis) -> Result<Vec<PlayerId>, StoreError> {
        let docs = all(self
            .coll("reliability")
            .find(doc! {"moderation": "banned", "updated_ms": {"$gte": i64_of(since.0)}})
            .projection(doc! {"_id": 1}))
        .await?;
        docs.iter().map(|d| parse_id(get_str(d, "_id")?)).collect()
    }

    async fn set_role(
        &self,
        player: PlayerId,
        role: Role,
        admin: PlayerId,
        at: Millis,
    ) -> Result<Role, StoreError> {
        transaction!(self, self.limits.transaction_deadline, |s| {
            let id = player.to_string();
            let Some(before) = self
                .coll("players")
                .find_one(doc! {"_id": &id})
                .session(&mut *s)
                .await
                .map_err(err)?
            else {
                return Err(StoreError::NotFound(format!("player {player}")));
            };
            let before = player_record(&before)?.role;
            self.coll("players")
                .update_one(doc! {"_id": &id}, doc! {"$set": {"role": role.as_str()}})
                .session(&mut *s)
                .await
                .map_err(err)?;
            let detail = serde_json::json!({"from": before.as_str(), "to": role.as_str()});
            audit(self, s, admin, "set_role", &id, detail, at).await?;
            Ok(before)
        })
    }

    async fn reliabilities(
        &self,
        flagged_only: bool,
        limit: usize,
    ) -> Result<Vec<PlayerReliability>, StoreError> {
        let filter = if flagged_only {
            doc! {"$or": [
                {"flag": {"$ne": Bson::Null}, "moderation": {"$ne": "cleared"}},
                {"moderation": "banned"},
            ]}
        } else {
            doc! {"_id": {"$nin": [truth::MODEL_KEY, truth::CROWD_KEY]}}
        };
        let docs = all(self
            .coll("reliability")
            .find(filter)
            .sort(doc! {"updated_ms": -1})
            .limit(i64::try_from(limit).unwrap_or(i64::MAX)))
        .await?;
        let mut out = Vec::new();
        for d in docs {
            let id = get_str(&d, "_id")?;
            if !truth::is_player_key(id) {
                continue;
            }
            let player: PlayerId = parse_id(id)?;
            let name = match self.player(player).await? {
                Some(p) => p.name,
                None => continue,
            };
            out.push(PlayerReliability {
                player,
                name,
                reliability: reliability_of(&d)?,
            });
        }
        Ok(out)
    }

    async fn reliabilities_of(
        &self,
        players: &[PlayerId],
    ) -> Result<Vec<(PlayerId, Reliability)>, StoreError> {
        let mut out = Vec::new();
        for chunk in players.chunks(1_000) {
            let ids: Vec<String> = chunk.iter().map(|p| p.to_string()).collect();
            for d in all(self.coll("reliability").find(doc! {"_id": {"$in": ids}})).await? {
                out.push((parse_id(get_str(&d, "_id")?)?, reliability_of(&d)?));
            }
        }
        Ok(out)
    }

    async fn dataset_stats(&self, since: Millis) -> Result<DatasetStats, StoreError> {
        let labels = all(self
            .coll("labels")
            .find(doc! {"created_ms": {"$gte": i64_of(since.0)}})
            .projection(doc! {"created_ms": 1}))
        .await?;
        let times = labels
            .iter()
            .map(|d| get_u64(d, "created_ms").map(Millis))
            .collect::<Result<Vec<_>, _>>()?;
        let mut retired = [0u64; emofy_game::EMOTION_COUNT];
        for d in all(self
            .coll("images")
            .find(doc! {"status": "retired"})
            .projection(doc! {"consensus": 1}))
        .await?
        {
            if let Some(e) = emotion(opt_str(&d, "consensus"))? {
                retired[e.index()] += 1;
            }
        }
        Ok(DatasetStats {
            labels_per_day: crate::store::per_day(times),
            retired_per_class: retired,
        })
    }

    async fn truth_snapshot(&self, max_labels: usize) -> Result<TruthSnapshot, StoreError> {
        let docs = all(self
            .coll("labels")
            .find(doc! {})
            .sort(doc! {"created_ms": -1, "_id": -1})
            .limit(i64::try_from(max_labels).unwrap_or(i64::MAX)))
        .await?;
        let labels = docs.iter().map(label_of).collect::<Result<Vec<_>, _>>()?;
        let ids: std::collections::BTreeSet<String> =
            labels.iter().map(|l| l.image.to_hex()).collect();
        let ids: Vec<String> = ids.into_iter().collect();
        let (mut gold, mut model_guesses, mut known) = (Vec::new(), Vec::new(), Vec::new());
        let mut closed = Vec::new();
        for chunk in ids.chunks(1_000) {
            let images = all(self
                .coll("images")
                .find(doc! {"_id": {"$in": chunk.to_vec()}})
                .projection(doc! {"gold": 1, "model_guess": 1, "source": 1, "source_label": 1, "status": 1, "consensus": 1, "votes": 1}))
            .await?;
            for d in images {
                let id: ImageId = parse_id(get_str(&d, "_id")?)?;
                let status = status_of(&d)?;
                if !status.is_open() {
                    closed.push((id, status, votes_of(&d)?.total()));
                }
                if let Some(g) = emotion(opt_str(&d, "gold"))? {
                    gold.push((id, g));
                }
                if let Some(k) = opt_str(&d, "source").and_then(|s| {
                    ImageSource::known_of(&s, emotion(opt_str(&d, "source_label")).ok().flatten())
                }) {
                    known.push((id, k));
                }
                if let Some(m) = emotion(opt_str(&d, "model_guess"))? {
                    model_guesses.push((id, m));
                }
            }
        }
        let (mut reliabilities, mut crowd) = (Vec::new(), None);
        for d in all(self
            .coll("reliability")
            .find(doc! {"_id": {"$ne": truth::MODEL_KEY}}))
        .await?
        {
            let id = get_str(&d, "_id")?;
            if id == truth::CROWD_KEY {
                crowd = truth::crowd_from(get_str(&d, "data")?);
            } else {
                reliabilities.push((parse_id(id)?, reliability_of(&d)?));
            }
        }
        Ok(TruthSnapshot {
            labels,
            gold,
            model_guesses,
            known,
            reliabilities,
            crowd,
            closed,
        })
    }

    async fn apply_truth_pass(&self, pass: TruthPass, at: Millis) -> Result<(), StoreError> {
        // Document by document (no transaction: each write is whole, and an
        // answer racing a write only loses one online matrix update).
        let at_i = i64_of(at.0);
        let mut matrices: Vec<(String, emofy_game::truth::Confusion)> = pass
            .matrices
            .into_iter()
            .map(|(p, m)| (p.to_string(), m))
            .collect();
        if let Some(m) = pass.model {
            matrices.push((truth::MODEL_KEY.to_owned(), m));
        }
        for (id, matrix) in matrices {
            let current = self
                .coll("reliability")
                .find_one(doc! {"_id": &id})
                .await
                .map_err(err)?;
            let mut r = match current {
                Some(d) => reliability_of(&d)?,
                None => Reliability::default(),
            };
            r.matrix = matrix;
            self.coll("reliability")
                .replace_one(doc! {"_id": &id}, reliability_doc(&id, &r, at_i)?)
                .upsert(true)
                .await
                .map_err(err)?;
        }
        self.coll("reliability")
            .replace_one(
                doc! {"_id": truth::CROWD_KEY},
                doc! {
                    "_id": truth::CROWD_KEY,
                    "data": truth::crowd_json(&pass.crowd),
                    "flag": Bson::Null,
                    "moderation": "none",
                    "updated_ms": at_i,
                },
            )
            .upsert(true)
            .await
            .map_err(err)?;
        let updated = i64_of(crate::clock::now().0.max(at.0));
        for (image, p) in pass.posteriors {
            self.coll("images")
                .update_one(
                    doc! {"_id": image.to_hex(), "status": "open"},
                    doc! {"$set": {"posterior": truth::posterior_json(&p), "updated_ms": updated}},
                )
                .await
                .map_err(err)?;
        }
        for r in pass.rejudged {
            self.coll("images")
                .update_one(
                    doc! {
                        "_id": r.image.to_hex(),
                        "status": r.was.name(),
                        "consensus": consensus_bson(&r.was),
                    },
                    doc! {"$set": {
                        "posterior": truth::posterior_json(&r.posterior),
                        "status": r.now.name(),
                        "consensus": consensus_bson(&r.now),
                        "updated_ms": updated,
                    }},
                )
                .await
                .map_err(err)?;
        }
        Ok(())
    }

    async fn audit_log(&self, limit: usize) -> Result<Vec<AuditEntry>, StoreError> {
        let docs = all(self
            .coll("moderation_log")
            .find(doc! {})
            .sort(doc! {"at_ms": -1, "_id": -1})
            .limit(i64::try_from(limit).unwrap_or(i64::MAX)))
        .await?;
        let mut out = Vec::new();
        for d in docs {
            out.push(AuditEntry {
                moderator: parse_id(get_str(&d, "moderator")?)?,
                action: get_str(&d, "action")?.to_owned(),
                target: get_str(&d, "target")?.to_owned(),
                detail: serde_json::from_str(get_str(&d, "detail")?)
                    .map_err(|e| corrupt(format!("audit detail: {e}")))?,
                at: Millis(get_u64(&d, "at_ms")?),
            });
        }
        Ok(out)
    }
}

/// A moderator's decision on an image: load, `plan_moderation`, apply (each
/// settlement once, by its ledger key).
#[allow(clippy::too_many_arguments)]
async fn moderate_image_tx(
    store: &MongoStore,
    s: &mut ClientSession,
    image: ImageId,
    action: &ImageAction,
    moderator: PlayerId,
    at: Millis,
    rules: &GameRules,
) -> Result<ModeratedImage, StoreError> {
    let hex = image.to_hex();
    let d = store
        .coll("images")
        .find_one(doc! {"_id": &hex})
        .session(&mut *s)
        .await?
        .ok_or_else(|| StoreError::NotFound(format!("image {image}")))?;
    let before = status_of(&d)?;
    let (labels, _, _) =
        super::rounds::counted_labels(store, s, &hex, rules.labels_read_cap(), []).await?;
    let plan = emofy_game::plan::plan_moderation(
        emofy_game::plan::ModerationInputs {
            image,
            status: before,
            posterior: truth::posterior_from(opt_str(&d, "posterior").as_deref()),
            gold: emotion(opt_str(&d, "gold"))?,
            labels,
        },
        action,
        rules,
        at,
    )
    .map_err(truth::moderation_refusal)?;
    store
        .coll("images")
        .update_one(
            doc! {"_id": &hex},
            doc! {"$set": {
                "status": plan.status.name(), "consensus": consensus_bson(&plan.status),
                "gold": plan.gold.map(|e| e.as_str()),
                "updated_ms": i64_of(crate::clock::now().0.max(at.0)),
            }},
        )
        .session(&mut *s)
        .await?;
    let detail = detail_json(&plan.detail)?;
    audit(store, s, moderator, action.name(), &hex, detail, at).await?;
    let mut paid = Vec::new();
    for (p, pts, key) in &plan.settle {
        // Paid once: a key already in the ledger was settled before.
        let exists = store
            .coll("score_events")
            .find_one(doc! {"_id": key})
            .session(&mut *s)
            .await?;
        if exists.is_none() {
            paid.push(super::rounds::settle_player(store, s, *p, *pts, i64_of(at.0)).await?);
        }
    }
    let changes = plan.changes(&paid);
    super::rounds::insert_ledger(store, s, &changes).await?;
    Ok(ModeratedImage {
        status: plan.status,
        gold: plan.gold,
        changes,
    })
}
