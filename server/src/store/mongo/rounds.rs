//! Offers, the answer transaction (load → `plan_answer` → apply), the label
//! writer (group commit), label history, the score ledger.

use super::MongoStore;
use super::codec::*;
use super::prelude::*;
use super::tx::*;

/// An answer waiting for the label writer.
pub(super) struct PendingAnswer {
    answer: AnswerRecord,
    rules: GameRules,
    reply: oneshot::Sender<Result<AnswerOutcome, StoreError>>,
}

#[async_trait]
impl RoundStore for MongoStore {
    async fn record_offer(&self, o: OfferRecord) -> Result<(), StoreError> {
        self.coll("rounds")
            .insert_one(doc! {
                "_id": o.round.to_string(),
                "player_id": o.player.to_string(),
                "image_id": o.image.to_hex(),
                "shown": o.shown.map(|e| e.as_str()),
                "offered_ms": i64_of(o.offered.0),
                "deadline_ms": i64_of(o.deadline.0),
                "state": "offered",
            })
            .await
            .map_err(err)?;
        Ok(())
    }

    async fn close_round(
        &self,
        round: RoundId,
        state: &'static str,
        at: Millis,
    ) -> Result<(), StoreError> {
        self.coll("rounds")
            .update_one(
                doc! {"_id": round.to_string(), "state": "offered"},
                doc! {"$set": {"state": state, "closed_ms": i64_of(at.0)}},
            )
            .await
            .map_err(err)?;
        Ok(())
    }

    async fn seen_images(&self, player: PlayerId) -> Result<Vec<ImageId>, StoreError> {
        let docs: Vec<Document> = all(self
            .coll("rounds")
            .find(doc! {"player_id": player.to_string()})
            .projection(doc! {"image_id": 1}))
        .await?;
        docs.iter()
            .map(|d| parse_id(get_str(d, "image_id")?))
            .collect()
    }

    async fn record_answer(
        &self,
        a: AnswerRecord,
        rules: &GameRules,
    ) -> Result<AnswerOutcome, StoreError> {
        if let Some(writer) = &self.writer {
            let (reply, done) = oneshot::channel();
            writer
                .send(PendingAnswer {
                    answer: a,
                    rules: *rules,
                    reply,
                })
                .await
                .map_err(|_| StoreError::Unavailable("the label writer has stopped".into()))?;
            // The driver has no socket timeout: a server that stops answering would hang the player.
            return match tokio::time::timeout(self.limits.answer_deadline, done).await {
                Ok(reply) => reply.map_err(|_| {
                    StoreError::Unavailable("the label writer dropped the answer".into())
                })?,
                Err(_) => Err(unconfirmed(self.limits.answer_deadline)),
            };
        }
        tokio::time::timeout(self.limits.answer_deadline, self.answer_alone(a, rules))
            .await
            .unwrap_or_else(|_| Err(unconfirmed(self.limits.answer_deadline)))
    }

    async fn player_labels(
        &self,
        player: PlayerId,
        cursor: Option<LabelCursor>,
        limit: usize,
    ) -> Result<Vec<LabelRecord>, StoreError> {
        let mut filter = doc! {"player_id": player.to_string()};
        if let Some(c) = cursor {
            older_than(&mut filter, i64_of(c.at.0), c.round.to_string());
        }
        let docs: Vec<Document> = all(self
            .coll("labels")
            .find(filter)
            .sort(doc! {"created_ms": -1, "_id": -1})
            .limit(i64::try_from(limit).unwrap_or(i64::MAX)))
        .await?;
        docs.iter().map(label_of).collect()
    }

    async fn image_labels(
        &self,
        image: ImageId,
        limit: usize,
    ) -> Result<Vec<LabelRecord>, StoreError> {
        let docs: Vec<Document> = all(self
            .coll("labels")
            .find(doc! {"image_id": image.to_hex()})
            .sort(doc! {"created_ms": 1, "_id": 1})
            .limit(i64::try_from(limit).unwrap_or(i64::MAX)))
        .await?;
        docs.iter().map(label_of).collect()
    }

    async fn labels_of_images(
        &self,
        images: &[ImageId],
        per_image: usize,
    ) -> Result<HashMap<ImageId, Vec<LabelRecord>>, StoreError> {
        let mut out: HashMap<ImageId, Vec<LabelRecord>> = HashMap::new();
        for chunk in images.chunks(1_000) {
            let ids: Vec<String> = chunk.iter().map(ImageId::to_hex).collect();
            // One query per thousand images; the cursor streams in batches
            // and each image keeps its oldest `per_image`.
            let mut cursor = self
                .coll("labels")
                .find(doc! {"image_id": {"$in": ids}})
                .sort(doc! {"image_id": 1, "created_ms": 1, "_id": 1})
                .await
                .map_err(err)?;
            while let Some(d) = cursor.try_next().await.map_err(err)? {
                let label = label_of(&d)?;
                let kept = out.entry(label.image).or_default();
                if kept.len() < per_image {
                    kept.push(label);
                }
            }
        }
        Ok(out)
    }

    async fn score_events_since(
        &self,
        since: Millis,
        limit: usize,
    ) -> Result<Vec<ScoreChange>, StoreError> {
        let docs: Vec<Document> = all(self
            .coll("score_events")
            .find(doc! {"at_ms": {"$gte": i64_of(since.0)}})
            .sort(doc! {"at_ms": 1, "_id": 1})
            .limit(i64::try_from(limit).unwrap_or(i64::MAX)))
        .await?;
        docs.iter()
            .map(|d| {
                let reason = get_str(d, "reason")?;
                Ok(ScoreChange {
                    player: parse_id(get_str(d, "player_id")?)?,
                    name: get_str(d, "name")?.to_owned(),
                    delta: get_u32(d, "delta")?,
                    total: get_u64(d, "total")?,
                    key: get_str(d, "_id")?.to_owned(),
                    at: Millis(get_u64(d, "at_ms")?),
                    reason: match reason {
                        "answer" => ScoreReason::Answer,
                        "consensus" => ScoreReason::Consensus,
                        other => return Err(corrupt(format!("score reason {other:?}"))),
                    },
                })
            })
            .collect()
    }

    async fn flush(&self) -> Result<(), StoreError> {
        // Every write is acknowledged with the configured (journaled) write concern before it returns.
        Ok(())
    }
}

impl MongoStore {
    /// One answer in its own transaction.
    async fn answer_alone(
        &self,
        a: AnswerRecord,
        rules: &GameRules,
    ) -> Result<AnswerOutcome, StoreError> {
        transaction!(self, self.limits.answer_deadline, |s| answer_tx(
            self, s, &a, rules
        )
        .await)
    }
}

/// The label writer (group commit). **Owns:** the queue of answers waiting
/// for MongoDB. It takes every answer queued (up to `max_batch`), applies
/// them in order inside one transaction (later answers see earlier ones'
/// writes), commits once, and only then answers each caller. An answer its
/// plan refuses (round closed, already answered) is answered with its error
/// and does not disturb the others: plans refuse before any write. A driver
/// error or a failed commit fails the whole batch with `Unavailable` (the
/// batch is retried whole when the failure is transient), so no caller is
/// told a label is stored unless the commit succeeded.
pub(super) async fn label_writer(
    store: MongoStore,
    mut rx: mpsc::Receiver<PendingAnswer>,
    max_batch: usize,
) {
    let mut batch: Vec<PendingAnswer> = Vec::with_capacity(max_batch);
    while let Some(first) = rx.recv().await {
        batch.push(first);
        while batch.len() < max_batch {
            match rx.try_recv() {
                Ok(p) => batch.push(p),
                Err(_) => break,
            }
        }
        let started = std::time::Instant::now();
        let n = batch.len();
        let written = transaction!(&store, store.limits.answer_deadline, |s| {
            let mut results = Vec::with_capacity(batch.len());
            for p in &batch {
                match answer_tx(&store, s, &p.answer, &p.rules).await {
                    Err(e @ StoreError::Unavailable(_)) | Err(e @ StoreError::Corrupt(_)) => {
                        return Err(e);
                    }
                    other => results.push(other),
                }
            }
            Ok(results)
        });
        tracing::debug!(
            answers = n,
            ms = started.elapsed().as_secs_f64() * 1000.0,
            "label batch committed"
        );
        match written {
            Ok(results) => {
                for (p, r) in batch.drain(..).zip(results) {
                    let _ = p.reply.send(r);
                }
            }
            Err(e) => {
                for p in batch.drain(..) {
                    let _ = p.reply.send(Err(StoreError::Unavailable(e.to_string())));
                }
            }
        }
    }
}

/// Loads what [`emofy_game::plan::plan_answer`] reads: five queries whatever
/// the image holds (round, image, player, labels, reliabilities).
async fn answer_inputs(
    store: &MongoStore,
    s: &mut ClientSession,
    a: &AnswerRecord,
    rules: &GameRules,
) -> Result<emofy_game::plan::AnswerInputs, StoreError> {
    use emofy_game::plan::{AnswerInputs, StoredImage, StoredRound};
    let round_id = a.round.to_string();
    let player_id = a.player.to_string();
    let image_hex = a.image.to_hex();
    let round = match store
        .coll("rounds")
        .find_one(doc! {"_id": &round_id})
        .session(&mut *s)
        .await?
    {
        Some(r) => Some(StoredRound {
            player: parse_id(get_str(&r, "player_id")?)?,
            image: parse_id(get_str(&r, "image_id")?)?,
            open: get_str(&r, "state")? == "offered",
        }),
        None => None,
    };
    if !round.as_ref().is_some_and(|r| r.takes(a)) {
        // Refused by the plan; nothing more is worth reading.
        return Ok(AnswerInputs::round_only(round));
    }
    let image = match store
        .coll("images")
        .find_one(doc! {"_id": &image_hex})
        .session(&mut *s)
        .await?
    {
        Some(d) => Some(StoredImage {
            votes: votes_of(&d)?,
            status: status_of(&d)?,
            gold: emotion(opt_str(&d, "gold"))?,
            model_guess: emotion(opt_str(&d, "model_guess"))?,
            known: opt_str(&d, "source").and_then(|s| {
                ImageSource::known_of(&s, emotion(opt_str(&d, "source_label")).ok().flatten())
            }),
        }),
        None => None,
    };
    let player = match store
        .coll("players")
        .find_one(doc! {"_id": &player_id})
        .session(&mut *s)
        .await?
    {
        Some(d) => {
            let p = player_record(&d)?;
            Some((p.name, p.tally))
        }
        None => None,
    };
    let (earlier, mut reliabilities, mut crowd) = counted_labels(
        store,
        s,
        &image_hex,
        rules.labels_read_cap(),
        [
            player_id.clone(),
            truth::MODEL_KEY.to_owned(),
            truth::CROWD_KEY.to_owned(),
        ],
    )
    .await?;
    Ok(AnswerInputs {
        round,
        image,
        player,
        earlier,
        me: reliabilities.remove(&player_id),
        model: reliabilities.remove(truth::MODEL_KEY),
        crowd: crowd.remove(truth::CROWD_KEY),
    })
}

/// The labels on an image whose players count, oldest first, at most
/// `limit`, with their players' reliabilities; each label document mirrors
/// whether its player counts (`counted`, kept by [`mark_counted`]), so the
/// index `{image_id, counted, created_ms}` yields exactly these. The
/// reliabilities of `also` are read in the same query and returned with
/// those of the labels' players.
pub(super) async fn counted_labels(
    store: &MongoStore,
    s: &mut ClientSession,
    image_hex: &str,
    limit: u32,
    also: impl IntoIterator<Item = String>,
) -> Result<
    (
        Vec<emofy_game::plan::EarlierLabel>,
        std::collections::HashMap<String, Reliability>,
        std::collections::HashMap<String, emofy_game::CrowdPrior>,
    ),
    StoreError,
> {
    let mut label_docs = Vec::new();
    {
        let mut cursor = store
            .coll("labels")
            .find(doc! {"image_id": image_hex, "counted": true})
            .sort(doc! {"created_ms": 1, "_id": 1})
            .limit(i64::from(limit))
            .session(&mut *s)
            .await?;
        while let Some(d) = cursor.next(&mut *s).await {
            label_docs.push(d?);
        }
    }
    let ids: Vec<String> = label_docs
        .iter()
        .filter_map(|d| opt_str(d, "player_id"))
        .chain(also)
        .collect();
    let mut reliabilities = std::collections::HashMap::new();
    let mut crowd = std::collections::HashMap::new();
    {
        let mut cursor = store
            .coll("reliability")
            .find(doc! {"_id": {"$in": ids}})
            .session(&mut *s)
            .await?;
        while let Some(d) = cursor.next(&mut *s).await {
            let d = d?;
            let id = get_str(&d, "_id")?.to_owned();
            if id == truth::CROWD_KEY {
                if let Some(c) = truth::crowd_from(get_str(&d, "data")?) {
                    crowd.insert(id, c);
                }
            } else {
                reliabilities.insert(id, reliability_of(&d)?);
            }
        }
    }
    let mut earlier = Vec::with_capacity(label_docs.len());
    for d in &label_docs {
        let p = get_str(d, "player_id")?;
        earlier.push(emofy_game::plan::EarlierLabel {
            player: parse_id(p)?,
            answer: emotion(opt_str(d, "emotion"))?.ok_or_else(|| corrupt("label"))?,
            shown: emotion(opt_str(d, "shown"))?,
            decoy: get_bool(d, "decoy"),
            reliability: reliabilities.get(p).cloned().unwrap_or_default(),
        });
    }
    Ok((earlier, reliabilities, crowd))
}

/// Applies a plan's writes in the session's transaction.
async fn apply_answer(
    store: &MongoStore,
    s: &mut ClientSession,
    plan: &emofy_game::plan::AnswerPlan,
) -> Result<AnswerOutcome, StoreError> {
    let l = &plan.label;
    let round_id = l.round.to_string();
    let player_id = l.player.to_string();
    let image_hex = l.image.to_hex();
    let at = i64_of(l.at.0);
    store
        .coll("labels")
        .insert_one(doc! {
            "_id": &round_id, "image_id": &image_hex, "player_id": &player_id,
            "emotion": l.emotion.as_str(), "shown": l.shown.map(|e| e.as_str()),
            "response_ms": i64_of(l.response_ms), "created_ms": at, "points": i64::from(l.points),
            "decoy": l.decoy, "gold": l.gold, "counted": l.counted,
        })
        .session(&mut *s)
        .await?;
    let img = &plan.image;
    let updated = i64_of(crate::clock::now().0.max(l.at.0));
    store
        .coll("images")
        .update_one(
            doc! {"_id": &image_hex},
            doc! {"$set": {
                "votes": votes_bson(&img.votes), "status": img.status.name(),
                "consensus": consensus_bson(&img.status), "updated_ms": updated,
                "posterior": truth::posterior_json(&img.posterior),
                "model_guess": img.model_guess.map(|e| e.as_str()),
            }},
        )
        .session(&mut *s)
        .await?;
    save_reliability(store, s, &player_id, &plan.me, at).await?;
    if let Some(counted) = plan.recount {
        mark_counted(store, s, &player_id, counted).await?;
    }
    if let Some(m) = &plan.model {
        save_reliability(store, s, truth::MODEL_KEY, m, at).await?;
    }
    let t = &plan.tally;
    let mut set = doc! {
        "score": i64_of(t.score), "streak": i64::from(t.streak),
        "best_streak": i64::from(t.best_streak), "answers": i64::from(t.answers),
    };
    if plan.scored {
        set.insert("score_at_ms", at);
    }
    store
        .coll("players")
        .update_one(doc! {"_id": &player_id}, doc! {"$set": set})
        .session(&mut *s)
        .await?;
    store
        .coll("rounds")
        .update_one(
            doc! {"_id": &round_id},
            doc! {"$set": {"state": "answered", "answer": plan.round_answer.as_str(), "closed_ms": at}},
        )
        .session(&mut *s)
        .await?;
    let mut settled = Vec::with_capacity(plan.settle.len());
    for (p, pts) in &plan.settle {
        settled.push(settle_player(store, s, *p, *pts, at).await?);
    }
    let changes = plan.changes(&settled);
    insert_ledger(store, s, &changes).await?;
    Ok(plan.outcome(changes))
}

/// Marks every label of a player as counting or not (their reliability's
/// `counts()` changed).
pub(super) async fn mark_counted(
    store: &MongoStore,
    s: &mut ClientSession,
    player_id: &str,
    counted: bool,
) -> Result<(), StoreError> {
    store
        .coll("labels")
        .update_many(
            doc! {"player_id": player_id, "counted": {"$ne": counted}},
            doc! {"$set": {"counted": counted}},
        )
        .session(&mut *s)
        .await?;
    Ok(())
}

/// Adds settlement points to a player; their name and new total.
pub(super) async fn settle_player(
    store: &MongoStore,
    s: &mut ClientSession,
    player: PlayerId,
    points: u32,
    at: i64,
) -> Result<emofy_game::plan::SettledTotal, StoreError> {
    let updated = store
        .coll("players")
        .find_one_and_update(
            doc! {"_id": player.to_string()},
            doc! {"$inc": {"score": i64::from(points)}, "$set": {"score_at_ms": at}},
        )
        .return_document(mongodb::options::ReturnDocument::After)
        .session(&mut *s)
        .await?
        .ok_or_else(|| corrupt("settled player missing"))?;
    Ok(emofy_game::plan::SettledTotal {
        player,
        name: get_str(&updated, "name")?.to_owned(),
        total: get_u64(&updated, "score")?,
    })
}

/// Appends score changes to the ledger (`score_events`), in one insert.
pub(super) async fn insert_ledger(
    store: &MongoStore,
    s: &mut ClientSession,
    changes: &[ScoreChange],
) -> Result<(), StoreError> {
    if changes.is_empty() {
        return Ok(());
    }
    let docs: Vec<Document> = changes
        .iter()
        .map(|ch| {
            doc! {
                "_id": &ch.key, "player_id": ch.player.to_string(), "name": &ch.name,
                "delta": i64::from(ch.delta), "total": i64_of(ch.total),
                "reason": ch.reason.as_str(), "at_ms": i64_of(ch.at.0),
            }
        })
        .collect();
    store
        .coll("score_events")
        .insert_many(docs)
        .session(&mut *s)
        .await?;
    Ok(())
}

/// The answer transaction: load, plan, apply (the embedded store runs the same plan).
async fn answer_tx(
    store: &MongoStore,
    s: &mut ClientSession,
    a: &AnswerRecord,
    rules: &GameRules,
) -> Result<AnswerOutcome, StoreError> {
    let inputs = answer_inputs(store, s, a, rules).await?;
    let plan =
        emofy_game::plan::plan_answer(inputs, a, rules).map_err(|r| StoreError::refused(r, a))?;
    apply_answer(store, s, &plan).await
}
