//! Offers, the answer transaction (load → `plan_answer` → apply), label history, the score ledger.

use super::SqliteStore;
use super::codec::*;
use super::prelude::*;

#[async_trait]
impl RoundStore for SqliteStore {
    async fn record_offer(&self, o: OfferRecord) -> Result<(), StoreError> {
        self.write(move |c| {
            exec(
                c,
                "INSERT INTO rounds (id, player_id, image_id, shown, offered_ms, deadline_ms, state) VALUES (?1, ?2, ?3, ?4, ?5, ?6, 'offered')",
                params![
                    o.round.to_string(),
                    o.player.to_string(),
                    o.image.to_hex(),
                    o.shown.map(|e| e.as_str()),
                    i64_of(o.offered.0),
                    i64_of(o.deadline.0)
                ],
            )
            .map_err(db_err)?;
            Ok(())
        })
        .await
    }

    async fn close_round(
        &self,
        round: RoundId,
        state: &'static str,
        at: Millis,
    ) -> Result<(), StoreError> {
        self.write(move |c| {
            exec(
                c,
                "UPDATE rounds SET state = ?2, closed_ms = ?3 WHERE id = ?1 AND state = 'offered'",
                params![round.to_string(), state, i64_of(at.0)],
            )
            .map_err(db_err)?;
            Ok(())
        })
        .await
    }

    async fn seen_images(&self, player: PlayerId) -> Result<Vec<ImageId>, StoreError> {
        self.read(move |c| {
            ids(
                c,
                "SELECT image_id FROM rounds WHERE player_id = ?1",
                params![player.to_string()],
            )
        })
        .await
    }

    async fn record_answer(
        &self,
        a: AnswerRecord,
        rules: &GameRules,
    ) -> Result<AnswerOutcome, StoreError> {
        let rules = *rules;
        let costs = self.costs.clone();
        self.write(move |c| {
            let ticks = costs.ticks();
            let (outcome, mut cost) = answer_tx(c, &a, &rules)?;
            cost.vm_steps = costs.ticks().saturating_sub(ticks) * VM_TICK;
            costs.add(cost);
            Ok(outcome)
        })
        .await
    }

    async fn player_labels(
        &self,
        player: PlayerId,
        cursor: Option<LabelCursor>,
        limit: usize,
    ) -> Result<Vec<LabelRecord>, StoreError> {
        self.read(move |c| {
            let mut st = c
                .prepare_cached(
                    "SELECT round_id, image_id, player_id, emotion, shown, response_ms, points, created_ms, decoy, gold FROM labels \
                     WHERE player_id = ?1 AND (?2 IS NULL OR created_ms < ?2 OR (created_ms = ?2 AND round_id < ?3)) \
                     ORDER BY created_ms DESC, round_id DESC LIMIT ?4",
                )
                .map_err(db_err)?;
            let rows = st
                .query_map(
                    params![
                        player.to_string(),
                        cursor.map(|k| i64_of(k.at.0)),
                        cursor.map(|k| k.round.to_string()),
                        i64_of(limit as u64)
                    ],
                    label_row,
                )
                .map_err(db_err)?;
            rows.map(|r| label_record(r.map_err(db_err)?)).collect()
        })
        .await
    }

    async fn image_labels(
        &self,
        image: ImageId,
        limit: usize,
    ) -> Result<Vec<LabelRecord>, StoreError> {
        self.read(move |c| labels_of_image(c, image, limit)).await
    }

    async fn labels_of_images(
        &self,
        images: &[ImageId],
        per_image: usize,
    ) -> Result<HashMap<ImageId, Vec<LabelRecord>>, StoreError> {
        let images = images.to_vec();
        self.read(move |c| {
            let mut out = HashMap::new();
            for image in images {
                let labels = labels_of_image(c, image, per_image)?;
                if !labels.is_empty() {
                    out.insert(image, labels);
                }
            }
            Ok(out)
        })
        .await
    }

    async fn score_events_since(
        &self,
        since: Millis,
        limit: usize,
    ) -> Result<Vec<ScoreChange>, StoreError> {
        self.read(move |c| {
            let mut st = c
                .prepare_cached(
                    "SELECT e.key, e.player_id, p.name, e.delta, e.total, e.reason, e.at_ms \
                     FROM score_events e JOIN players p ON p.id = e.player_id \
                     WHERE e.at_ms >= ?1 ORDER BY e.at_ms, e.key LIMIT ?2",
                )
                .map_err(db_err)?;
            let rows = st
                .query_map(params![i64_of(since.0), i64_of(limit as u64)], |r| {
                    Ok((
                        r.get::<_, String>(0)?,
                        r.get::<_, String>(1)?,
                        r.get::<_, String>(2)?,
                        r.get::<_, i64>(3)?,
                        r.get::<_, i64>(4)?,
                        r.get::<_, String>(5)?,
                        r.get::<_, i64>(6)?,
                    ))
                })
                .map_err(db_err)?;
            let mut out = Vec::new();
            for row in rows {
                let (key, player, name, delta, total, reason, at) = row.map_err(db_err)?;
                out.push(ScoreChange {
                    player: parse_id(&player)?,
                    name,
                    delta: u32::try_from(delta)
                        .map_err(|_| StoreError::Corrupt(format!("score delta {delta}")))?,
                    total: u64_of(total),
                    key,
                    at: Millis(u64_of(at)),
                    reason: match reason.as_str() {
                        "answer" => ScoreReason::Answer,
                        "consensus" => ScoreReason::Consensus,
                        other => {
                            return Err(StoreError::Corrupt(format!("score reason {other:?}")));
                        }
                    },
                });
            }
            Ok(out)
        })
        .await
    }

    async fn flush(&self) -> Result<(), StoreError> {
        self.write(|_| Ok(())).await
    }
}

/// What one answer cost the store: statements run, rows they returned or
/// wrote, and the SQLite virtual-machine instructions they took (which grow
/// with every row the engine walks, returned or not). The answer-cost test
/// holds them constant whatever an image collected.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct AnswerCost {
    pub statements: u32,
    pub rows_read: u32,
    pub rows_written: u32,
    pub vm_steps: u64,
}

/// What answers cost the store so far, summed.
#[derive(Debug, Default)]
pub struct AnswerCosts {
    answers: AtomicU64,
    statements: AtomicU64,
    rows_read: AtomicU64,
    rows_written: AtomicU64,
    vm_steps: AtomicU64,
    /// Ticks of the writer connection's progress handler, one per
    /// [`VM_TICK`] instructions of any statement the writer runs.
    pub(super) ticks: AtomicU64,
}

/// The writer's progress handler ticks once per this many SQLite VM
/// instructions: the resolution of [`AnswerCost::vm_steps`].
pub(super) const VM_TICK: u64 = 4;

/// A snapshot of [`AnswerCosts`].
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct AnswerCostTotals {
    pub answers: u64,
    pub statements: u64,
    pub rows_read: u64,
    pub rows_written: u64,
    pub vm_steps: u64,
}

impl AnswerCosts {
    fn add(&self, c: AnswerCost) {
        use std::sync::atomic::Ordering::Relaxed;
        self.answers.fetch_add(1, Relaxed);
        self.statements.fetch_add(u64::from(c.statements), Relaxed);
        self.rows_read.fetch_add(u64::from(c.rows_read), Relaxed);
        self.rows_written
            .fetch_add(u64::from(c.rows_written), Relaxed);
        self.vm_steps.fetch_add(c.vm_steps, Relaxed);
    }

    pub fn totals(&self) -> AnswerCostTotals {
        use std::sync::atomic::Ordering::Relaxed;
        AnswerCostTotals {
            answers: self.answers.load(Relaxed),
            statements: self.statements.load(Relaxed),
            rows_read: self.rows_read.load(Relaxed),
            rows_written: self.rows_written.load(Relaxed),
            vm_steps: self.vm_steps.load(Relaxed),
        }
    }

    fn ticks(&self) -> u64 {
        self.ticks.load(std::sync::atomic::Ordering::Relaxed)
    }
}

/// Counts what [`answer_tx`] does.
#[derive(Default)]
struct Meter(std::cell::Cell<AnswerCost>);

impl Meter {
    fn read(&self, rows: usize) {
        let mut c = self.0.get();
        c.statements += 1;
        c.rows_read += u32::try_from(rows).unwrap_or(u32::MAX);
        self.0.set(c);
    }

    fn wrote(&self, rows: usize) {
        let mut c = self.0.get();
        c.statements += 1;
        c.rows_written += u32::try_from(rows).unwrap_or(u32::MAX);
        self.0.set(c);
    }
}

/// The labels on an image whose players count (banned and automatically
/// flagged players' labels change nothing), with their reliabilities, at
/// most `limit`: what truth inference and settlement read. Each label row
/// mirrors whether its player counts (`counted`, kept by [`mark_counted`]),
/// so the partial index `labels_counted` yields exactly these rows, oldest
/// first, and the engine never walks a label that does not count.
pub(super) fn counted_labels(
    c: &Connection,
    image_hex: &str,
    limit: u32,
) -> Result<Vec<emofy_game::plan::EarlierLabel>, StoreError> {
    let mut st = c
        .prepare_cached(
            "SELECT l.player_id, l.emotion, l.shown, l.decoy, r.data FROM labels l \
             LEFT JOIN reliability r ON r.player_id = l.player_id \
             WHERE l.image_id = ?1 AND l.counted = 1 \
             ORDER BY l.created_ms, l.id LIMIT ?2",
        )
        .map_err(db_err)?;
    let rows = st
        .query_map(params![image_hex, limit], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, Option<String>>(2)?,
                r.get::<_, bool>(3)?,
                r.get::<_, Option<String>>(4)?,
            ))
        })
        .map_err(db_err)?;
    let mut out = Vec::new();
    for row in rows {
        let (p, e, sh, decoy, data) = row.map_err(db_err)?;
        out.push(emofy_game::plan::EarlierLabel {
            player: parse_id(&p)?,
            answer: parse_emotion(Some(e))?.ok_or_else(|| StoreError::Corrupt("label".into()))?,
            shown: parse_emotion(sh)?,
            decoy,
            reliability: reliability_from(data.as_deref())?.unwrap_or_default(),
        });
    }
    Ok(out)
}

/// Loads what [`emofy_game::plan::plan_answer`] reads: a constant number of
/// statements, and at most [`labels_read_cap`] labels.
fn answer_inputs(
    c: &Connection,
    a: &AnswerRecord,
    rules: &GameRules,
    meter: &Meter,
) -> Result<emofy_game::plan::AnswerInputs, StoreError> {
    use emofy_game::plan::{AnswerInputs, StoredImage, StoredRound};
    let round_id = a.round.to_string();
    let image_hex = a.image.to_hex();
    let player_id = a.player.to_string();
    let round: Option<(String, String, String)> = qrow(
        c,
        "SELECT player_id, image_id, state FROM rounds WHERE id = ?1",
        params![round_id],
        |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
    )
    .optional()
    .map_err(db_err)?;
    meter.read(usize::from(round.is_some()));
    let round = match round {
        Some((p, i, state)) => Some(StoredRound {
            player: parse_id(&p)?,
            image: parse_id(&i)?,
            open: state == "offered",
        }),
        None => None,
    };
    if !round.as_ref().is_some_and(|r| r.takes(a)) {
        // Refused by the plan; nothing more is worth reading.
        return Ok(AnswerInputs::round_only(round));
    }
    type ImageRow = (
        String,
        String,
        Option<String>,
        Option<String>,
        Option<String>,
        String,
        Option<String>,
    );
    let image: Option<ImageRow> = qrow(
        c,
        "SELECT votes, status, consensus, gold, model_guess, source, source_label FROM images WHERE id = ?1",
        params![image_hex],
        |r| r.try_into(),
    )
    .optional()
    .map_err(db_err)?;
    meter.read(usize::from(image.is_some()));
    let image = match image {
        Some((votes, status, consensus, gold, guess, source, source_label)) => Some(StoredImage {
            votes: votes_from_json(&votes)?,
            status: status_from(&status, parse_emotion(consensus)?)?,
            gold: parse_emotion(gold)?,
            model_guess: parse_emotion(guess)?,
            known: ImageSource::known_of(&source, parse_emotion(source_label).ok().flatten()),
        }),
        None => None,
    };
    let player: Option<(String, i64, i64, i64, i64)> = qrow(
        c,
        "SELECT name, score, streak, best_streak, answers FROM players WHERE id = ?1",
        params![player_id],
        |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)),
    )
    .optional()
    .map_err(db_err)?;
    meter.read(usize::from(player.is_some()));
    let player = player.map(|(name, score, streak, best, answers)| {
        (
            name,
            PlayerTally {
                score: u64_of(score),
                streak: u32_of(streak),
                best_streak: u32_of(best),
                answers: u32_of(answers),
            },
        )
    });
    let earlier = counted_labels(c, &image_hex, rules.labels_read_cap())?;
    meter.read(earlier.len());
    let mut me = None;
    let mut model = None;
    let mut crowd = None;
    {
        let mut st = c
            .prepare_cached(
                "SELECT player_id, data FROM reliability WHERE player_id IN (?1, ?2, ?3)",
            )
            .map_err(db_err)?;
        let rows = st
            .query_map(
                params![player_id, truth::MODEL_KEY, truth::CROWD_KEY],
                |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)),
            )
            .map_err(db_err)?;
        let mut n = 0;
        for row in rows {
            let (id, data) = row.map_err(db_err)?;
            n += 1;
            if id == truth::CROWD_KEY {
                crowd = truth::crowd_from(&data);
            } else if id == truth::MODEL_KEY {
                model = reliability_from(Some(&data))?;
            } else {
                me = reliability_from(Some(&data))?;
            }
        }
        meter.read(n);
    }
    Ok(AnswerInputs {
        round,
        image,
        player,
        earlier,
        me,
        model,
        crowd,
    })
}

/// Applies a plan: a constant number of statements, plus two per settled player.
fn apply_answer(
    c: &Connection,
    plan: &emofy_game::plan::AnswerPlan,
    meter: &Meter,
) -> Result<AnswerOutcome, StoreError> {
    let l = &plan.label;
    let round_id = l.round.to_string();
    let image_hex = l.image.to_hex();
    let player_id = l.player.to_string();
    let at = i64_of(l.at.0);
    let n = exec(
        c,
        "INSERT INTO labels (round_id, image_id, player_id, emotion, shown, response_ms, created_ms, points, decoy, gold, counted) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
        params![
            round_id,
            image_hex,
            player_id,
            l.emotion.as_str(),
            l.shown.map(|e| e.as_str()),
            i64_of(l.response_ms),
            at,
            l.points,
            l.decoy,
            l.gold,
            l.counted
        ],
    )
    .map_err(db_err)?;
    meter.wrote(n);
    let img = &plan.image;
    let n = exec(
        c,
        "UPDATE images SET votes = ?2, status = ?3, consensus = ?4, updated_ms = ?5, posterior = ?6, model_guess = ?7 WHERE id = ?1",
        params![
            image_hex,
            votes_to_json(&img.votes),
            img.status.name(),
            consensus_of(&img.status),
            i64_of(now_ms().0.max(l.at.0)),
            truth::posterior_json(&img.posterior),
            img.model_guess.map(|e| e.as_str())
        ],
    )
    .map_err(db_err)?;
    meter.wrote(n);
    save_reliability(c, &player_id, &plan.me, at)?;
    meter.wrote(1);
    if let Some(counted) = plan.recount {
        let n = mark_counted(c, &player_id, counted)?;
        meter.wrote(n);
    }
    if let Some(m) = &plan.model {
        save_reliability(c, truth::MODEL_KEY, m, at)?;
        meter.wrote(1);
    }
    let t = &plan.tally;
    let n = exec(
        c,
        "UPDATE players SET score = ?2, streak = ?3, best_streak = ?4, answers = ?5, \
         score_at_ms = CASE WHEN ?6 THEN ?7 ELSE score_at_ms END WHERE id = ?1",
        params![
            player_id,
            i64_of(t.score),
            t.streak,
            t.best_streak,
            t.answers,
            plan.scored,
            at
        ],
    )
    .map_err(db_err)?;
    meter.wrote(n);
    let n = exec(
        c,
        "UPDATE rounds SET state = 'answered', answer = ?2, closed_ms = ?3 WHERE id = ?1",
        params![round_id, plan.round_answer.as_str(), at],
    )
    .map_err(db_err)?;
    meter.wrote(n);
    let mut settled = Vec::with_capacity(plan.settle.len());
    for (p, pts) in &plan.settle {
        let (name, total): (String, i64) = qrow(
            c,
            "UPDATE players SET score = score + ?2, score_at_ms = ?3 WHERE id = ?1 RETURNING name, score",
            params![p.to_string(), pts, at],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .map_err(db_err)?;
        meter.wrote(1);
        settled.push(emofy_game::plan::SettledTotal {
            player: *p,
            name,
            total: u64_of(total),
        });
    }
    let changes = plan.changes(&settled);
    // The score ledger: leaderboards replay from it after an outage, periods seed from it.
    for ch in &changes {
        insert_ledger(c, ch)?;
        meter.wrote(1);
    }
    Ok(plan.outcome(changes))
}

/// Marks every label of a player as counting or not (their reliability's
/// `counts()` changed); the number of labels marked.
pub(super) fn mark_counted(
    c: &Connection,
    player_id: &str,
    counted: bool,
) -> Result<usize, StoreError> {
    exec(
        c,
        "UPDATE labels SET counted = ?2 WHERE player_id = ?1 AND counted != ?2",
        params![player_id, counted],
    )
    .map_err(db_err)
}

/// Appends a score change to the ledger (`score_events`).
pub(super) fn insert_ledger(c: &Connection, ch: &ScoreChange) -> Result<(), StoreError> {
    exec(
        c,
        "INSERT INTO score_events (key, player_id, delta, total, reason, at_ms) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        params![
            ch.key,
            ch.player.to_string(),
            ch.delta,
            i64_of(ch.total),
            ch.reason.as_str(),
            i64_of(ch.at.0)
        ],
    )
    .map_err(db_err)?;
    Ok(())
}

/// The answer transaction (inside the writer's savepoint): load, plan, apply.
pub(super) fn answer_tx(
    c: &Connection,
    a: &AnswerRecord,
    rules: &GameRules,
) -> Result<(AnswerOutcome, AnswerCost), StoreError> {
    let meter = Meter::default();
    let inputs = answer_inputs(c, a, rules, &meter)?;
    let plan =
        emofy_game::plan::plan_answer(inputs, a, rules).map_err(|r| StoreError::refused(r, a))?;
    let outcome = apply_answer(c, &plan, &meter)?;
    Ok((outcome, meter.0.get()))
}

/// An image's labels, oldest first, at most `limit` (one indexed query).
fn labels_of_image(
    c: &Connection,
    image: ImageId,
    limit: usize,
) -> Result<Vec<LabelRecord>, StoreError> {
    let mut st = c
        .prepare_cached(
            "SELECT round_id, image_id, player_id, emotion, shown, response_ms, points, created_ms, decoy, gold FROM labels \
             WHERE image_id = ?1 ORDER BY created_ms, round_id LIMIT ?2",
        )
        .map_err(db_err)?;
    let rows = st
        .query_map(params![image.to_hex(), i64_of(limit as u64)], label_row)
        .map_err(db_err)?;
    rows.map(|r| label_record(r.map_err(db_err)?)).collect()
}
