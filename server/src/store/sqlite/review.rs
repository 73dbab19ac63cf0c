//! Moderation (load → `plan_moderation` → apply), reliabilities, the audit log, truth passes.

use super::SqliteStore;
use super::codec::*;
use super::images::{META_COLUMNS, meta_record, meta_row};
use super::prelude::*;
use crate::store::detail_json;
use emofy_game::plan::plan_player_moderation;

#[async_trait]
impl ReviewStore for SqliteStore {
    async fn review_candidates(&self, limit: usize) -> Result<Vec<ReviewCandidate>, StoreError> {
        self.read(move |c| {
            let mut st = c
                .prepare_cached(&format!(
                    "SELECT {META_COLUMNS}, id, model_guess FROM images \
                     WHERE status = 'disputed' OR (status = 'open' AND votes != '[0,0,0,0,0,0,0]') \
                     ORDER BY updated_ms DESC LIMIT ?1"
                ))
                .map_err(db_err)?;
            let rows = st
                .query_map(params![i64::try_from(limit).unwrap_or(i64::MAX)], |r| {
                    Ok((
                        r.get::<_, String>(12)?,
                        r.get::<_, Option<String>>(13)?,
                        meta_row(r)?,
                    ))
                })
                .map_err(db_err)?;
            let mut out = Vec::new();
            for row in rows {
                let (id, guess, meta) = row.map_err(db_err)?;
                let meta = meta_record(parse_id(&id)?, meta)?;
                out.push(ReviewCandidate {
                    posterior: meta.posterior,
                    gold: meta.gold,
                    model_guess: parse_emotion(guess)?,
                    meta,
                });
            }
            Ok(out)
        })
        .await
    }

    async fn moderate_image(
        &self,
        image: ImageId,
        action: ImageAction,
        moderator: PlayerId,
        at: Millis,
        rules: &GameRules,
    ) -> Result<ModeratedImage, StoreError> {
        let rules = *rules;
        self.write(move |c| moderate_image_tx(c, image, &action, moderator, at, &rules))
            .await
    }

    async fn moderate_player(
        &self,
        player: PlayerId,
        action: PlayerAction,
        moderator: PlayerId,
        at: Millis,
    ) -> Result<Reliability, StoreError> {
        self.write(move |c| {
            if load_player(c, player)?.is_none() {
                return Err(StoreError::NotFound(format!("player {player}")));
            }
            let id = player.to_string();
            let plan =
                plan_player_moderation(action, load_reliability(c, &id)?.unwrap_or_default());
            save_reliability(c, &id, &plan.reliability, i64_of(at.0))?;
            if let Some(counted) = plan.recount {
                super::rounds::mark_counted(c, &id, counted)?;
            }
            audit(
                c,
                moderator,
                action.name(),
                &id,
                detail_json(&plan.detail)?,
                at,
            )?;
            Ok(plan.reliability)
        })
        .await
    }

    async fn banned_since(&self, since: Millis) -> Result<Vec<PlayerId>, StoreError> {
        self.read(move |c| {
            ids(
                c,
                "SELECT player_id FROM reliability WHERE moderation = 'banned' AND updated_ms >= ?1",
                params![i64_of(since.0)],
            )
        })
        .await
    }

    async fn set_role(
        &self,
        player: PlayerId,
        role: Role,
        admin: PlayerId,
        at: Millis,
    ) -> Result<Role, StoreError> {
        self.write(move |c| {
            let Some(before) = load_player(c, player)? else {
                return Err(StoreError::NotFound(format!("player {player}")));
            };
            exec(
                c,
                "UPDATE players SET role = ?2 WHERE id = ?1",
                params![player.to_string(), role.as_str()],
            )
            .map_err(db_err)?;
            audit(
                c,
                admin,
                "set_role",
                &player.to_string(),
                serde_json::json!({"from": before.role.as_str(), "to": role.as_str()}),
                at,
            )?;
            Ok(before.role)
        })
        .await
    }

    async fn reliabilities(
        &self,
        flagged_only: bool,
        limit: usize,
    ) -> Result<Vec<PlayerReliability>, StoreError> {
        self.read(move |c| {
            let sql = if flagged_only {
                "SELECT r.player_id, p.name, r.data FROM reliability r JOIN players p ON p.id = r.player_id \
                 WHERE (r.flag IS NOT NULL AND r.moderation != 'cleared') OR r.moderation = 'banned' ORDER BY r.updated_ms DESC LIMIT ?1"
            } else {
                "SELECT r.player_id, p.name, r.data FROM reliability r JOIN players p ON p.id = r.player_id \
                 ORDER BY r.updated_ms DESC LIMIT ?1"
            };
            let mut st = c.prepare_cached(sql).map_err(db_err)?;
            let rows = st
                .query_map(params![i64::try_from(limit).unwrap_or(i64::MAX)], |r| {
                    Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?, r.get::<_, String>(2)?))
                })
                .map_err(db_err)?;
            let mut out = Vec::new();
            for row in rows {
                let (id, name, data) = row.map_err(db_err)?;
                out.push(PlayerReliability {
                    player: parse_id(&id)?,
                    name,
                    reliability: reliability_from(Some(&data))?.unwrap_or_default(),
                });
            }
            Ok(out)
        })
        .await
    }

    async fn reliabilities_of(
        &self,
        players: &[PlayerId],
    ) -> Result<Vec<(PlayerId, Reliability)>, StoreError> {
        let ids: Vec<String> = players.iter().map(|p| p.to_string()).collect();
        self.read(move |c| {
            let mut st = c
                .prepare_cached("SELECT data FROM reliability WHERE player_id = ?1")
                .map_err(db_err)?;
            let mut out = Vec::new();
            for id in ids {
                let data: Option<String> = st
                    .query_row(params![id], |r| r.get(0))
                    .optional()
                    .map_err(db_err)?;
                if let Some(r) = reliability_from(data.as_deref())? {
                    out.push((parse_id(&id)?, r));
                }
            }
            Ok(out)
        })
        .await
    }

    async fn dataset_stats(&self, since: Millis) -> Result<DatasetStats, StoreError> {
        self.read(move |c| {
            let mut st = c
                .prepare_cached("SELECT created_ms FROM labels WHERE created_ms >= ?1")
                .map_err(db_err)?;
            let times = st
                .query_map(params![i64_of(since.0)], |r| r.get::<_, i64>(0))
                .map_err(db_err)?
                .map(|t| t.map(|t| Millis(u64_of(t))))
                .collect::<Result<Vec<_>, _>>()
                .map_err(db_err)?;
            let mut retired = [0u64; emofy_game::EMOTION_COUNT];
            let mut st = c
                .prepare_cached("SELECT consensus, COUNT(*) FROM images WHERE status = 'retired' GROUP BY consensus")
                .map_err(db_err)?;
            let rows = st
                .query_map([], |r| Ok((r.get::<_, Option<String>>(0)?, r.get::<_, i64>(1)?)))
                .map_err(db_err)?;
            for row in rows {
                let (e, n) = row.map_err(db_err)?;
                if let Some(e) = parse_emotion(e)? {
                    retired[e.index()] = u64_of(n);
                }
            }
            Ok(DatasetStats {
                labels_per_day: crate::store::per_day(times),
                retired_per_class: retired,
            })
        })
        .await
    }

    async fn truth_snapshot(&self, max_labels: usize) -> Result<TruthSnapshot, StoreError> {
        self.read(move |c| {
            let n = i64::try_from(max_labels).unwrap_or(i64::MAX);
            let mut st = c
                .prepare_cached(
                    "SELECT round_id, image_id, player_id, emotion, shown, response_ms, points, created_ms, decoy, gold \
                     FROM labels ORDER BY id DESC LIMIT ?1",
                )
                .map_err(db_err)?;
            let rows = st.query_map(params![n], label_row).map_err(db_err)?;
            let mut labels = Vec::new();
            for row in rows {
                labels.push(label_record(row.map_err(db_err)?)?);
            }
            let mut st = c
                .prepare_cached(
                    "SELECT id, gold, model_guess, source, source_label, status, consensus, votes FROM images WHERE id IN \
                     (SELECT image_id FROM (SELECT image_id FROM labels ORDER BY id DESC LIMIT ?1))",
                )
                .map_err(db_err)?;
            let rows = st
                .query_map(params![n], |r| {
                    Ok((
                        r.get::<_, String>(0)?,
                        r.get::<_, Option<String>>(1)?,
                        r.get::<_, Option<String>>(2)?,
                        r.get::<_, String>(3)?,
                        r.get::<_, Option<String>>(4)?,
                        r.get::<_, String>(5)?,
                        r.get::<_, Option<String>>(6)?,
                        r.get::<_, String>(7)?,
                    ))
                })
                .map_err(db_err)?;
            let (mut gold, mut model_guesses, mut known) = (Vec::new(), Vec::new(), Vec::new());
            let mut closed = Vec::new();
            for row in rows {
                let (id, g, m, source, source_label, status, consensus, votes) =
                    row.map_err(db_err)?;
                let id: ImageId = parse_id(&id)?;
                let status = status_from(&status, parse_emotion(consensus)?)?;
                if !status.is_open() {
                    closed.push((id, status, votes_from_json(&votes)?.total()));
                }
                if let Some(g) = parse_emotion(g)? {
                    gold.push((id, g));
                }
                if let Some(k) =
                    ImageSource::known_of(&source, parse_emotion(source_label).ok().flatten())
                {
                    known.push((id, k));
                }
                if let Some(m) = parse_emotion(m)? {
                    model_guesses.push((id, m));
                }
            }
            let mut st = c
                .prepare_cached("SELECT player_id, data FROM reliability WHERE player_id != ?1")
                .map_err(db_err)?;
            let rows = st
                .query_map(params![truth::MODEL_KEY], |r| {
                    Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?))
                })
                .map_err(db_err)?;
            let (mut reliabilities, mut crowd) = (Vec::new(), None);
            for row in rows {
                let (id, data) = row.map_err(db_err)?;
                if id == truth::CROWD_KEY {
                    crowd = truth::crowd_from(&data);
                } else if let Some(r) = reliability_from(Some(&data))? {
                    reliabilities.push((parse_id(&id)?, r));
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
        })
        .await
    }

    async fn apply_truth_pass(&self, pass: TruthPass, at: Millis) -> Result<(), StoreError> {
        self.write(move |c| {
            let at_i = i64_of(at.0);
            for (player, matrix) in &pass.matrices {
                let id = player.to_string();
                let mut r = load_reliability(c, &id)?.unwrap_or_default();
                r.matrix = matrix.clone();
                save_reliability(c, &id, &r, at_i)?;
            }
            if let Some(m) = &pass.model {
                let mut r = load_reliability(c, truth::MODEL_KEY)?.unwrap_or_default();
                r.matrix = m.clone();
                save_reliability(c, truth::MODEL_KEY, &r, at_i)?;
            }
            save_crowd(c, &pass.crowd, at_i)?;
            let updated = i64_of(now_ms().0.max(at.0));
            for (image, p) in &pass.posteriors {
                exec(
                    c,
                    "UPDATE images SET posterior = ?2, updated_ms = ?3 WHERE id = ?1 AND status = 'open'",
                    params![image.to_hex(), truth::posterior_json(p), updated],
                )
                .map_err(db_err)?;
            }
            for r in &pass.rejudged {
                exec(
                    c,
                    "UPDATE images SET posterior = ?2, status = ?3, consensus = ?4, updated_ms = ?5 \
                     WHERE id = ?1 AND status = ?6 AND consensus IS ?7",
                    params![
                        r.image.to_hex(),
                        truth::posterior_json(&r.posterior),
                        r.now.name(),
                        consensus_of(&r.now),
                        updated,
                        r.was.name(),
                        consensus_of(&r.was)
                    ],
                )
                .map_err(db_err)?;
            }
            Ok(())
        })
        .await
    }

    async fn audit_log(&self, limit: usize) -> Result<Vec<AuditEntry>, StoreError> {
        self.read(move |c| {
            let mut st = c
                .prepare_cached(
                    "SELECT moderator, action, target, detail, at_ms FROM moderation_log ORDER BY id DESC LIMIT ?1",
                )
                .map_err(db_err)?;
            let rows = st
                .query_map(params![i64::try_from(limit).unwrap_or(i64::MAX)], |r| {
                    Ok((
                        r.get::<_, String>(0)?,
                        r.get::<_, String>(1)?,
                        r.get::<_, String>(2)?,
                        r.get::<_, String>(3)?,
                        r.get::<_, i64>(4)?,
                    ))
                })
                .map_err(db_err)?;
            let mut out = Vec::new();
            for row in rows {
                let (m, action, target, detail, at) = row.map_err(db_err)?;
                out.push(AuditEntry {
                    moderator: parse_id(&m)?,
                    action,
                    target,
                    detail: serde_json::from_str(&detail)
                        .map_err(|e| StoreError::Corrupt(format!("audit detail: {e}")))?,
                    at: Millis(u64_of(at)),
                });
            }
            Ok(out)
        })
        .await
    }
}

/// A moderator's decision on an image (inside the writer's savepoint): load,
/// `plan_moderation`, apply (each settlement once, by its ledger key).
fn moderate_image_tx(
    c: &Connection,
    image: ImageId,
    action: &ImageAction,
    moderator: PlayerId,
    at: Millis,
    rules: &GameRules,
) -> Result<ModeratedImage, StoreError> {
    let hex = image.to_hex();
    let (status, consensus, posterior, gold): (
        String,
        Option<String>,
        Option<String>,
        Option<String>,
    ) = qrow(
        c,
        "SELECT status, consensus, posterior, gold FROM images WHERE id = ?1",
        params![hex],
        |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
    )
    .optional()
    .map_err(db_err)?
    .ok_or_else(|| StoreError::NotFound(format!("image {image}")))?;
    let before = status_from(&status, parse_emotion(consensus)?)?;
    let labels = super::rounds::counted_labels(c, &hex, rules.labels_read_cap())?;
    let plan = emofy_game::plan::plan_moderation(
        emofy_game::plan::ModerationInputs {
            image,
            status: before,
            posterior: truth::posterior_from(posterior.as_deref()),
            gold: parse_emotion(gold)?,
            labels,
        },
        action,
        rules,
        at,
    )
    .map_err(truth::moderation_refusal)?;
    exec(
        c,
        "UPDATE images SET status = ?2, consensus = ?3, gold = ?4, updated_ms = ?5 WHERE id = ?1",
        params![
            hex,
            plan.status.name(),
            consensus_of(&plan.status),
            plan.gold.map(|e| e.as_str()),
            i64_of(now_ms().0.max(at.0))
        ],
    )
    .map_err(db_err)?;
    audit(
        c,
        moderator,
        action.name(),
        &hex,
        detail_json(&plan.detail)?,
        at,
    )?;
    let at_i = i64_of(at.0);
    let mut paid = Vec::new();
    for (p, pts, key) in &plan.settle {
        // Paid once: a key already in the ledger was settled before.
        let fresh = exec(
            c,
            "INSERT OR IGNORE INTO score_events (key, player_id, delta, total, reason, at_ms) VALUES (?1, ?2, ?3, 0, 'consensus', ?4)",
            params![key, p.to_string(), pts, at_i],
        )
        .map_err(db_err)?;
        if fresh == 0 {
            continue;
        }
        let (name, total): (String, i64) = qrow(
            c,
            "UPDATE players SET score = score + ?2, score_at_ms = ?3 WHERE id = ?1 RETURNING name, score",
            params![p.to_string(), pts, at_i],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .map_err(db_err)?;
        exec(
            c,
            "UPDATE score_events SET total = ?2 WHERE key = ?1",
            params![key, total],
        )
        .map_err(db_err)?;
        paid.push(emofy_game::plan::SettledTotal {
            player: *p,
            name,
            total: u64_of(total),
        });
    }
    Ok(ModeratedImage {
        status: plan.status,
        gold: plan.gold,
        changes: plan.changes(&paid),
    })
}
