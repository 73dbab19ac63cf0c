//! Statements through the prepared-statement cache, and the row codecs
//! shared by the store's parts.

use super::prelude::*;

pub(super) fn unavailable(e: impl std::fmt::Display) -> StoreError {
    StoreError::Unavailable(e.to_string())
}

pub(super) fn db_err(e: rusqlite::Error) -> StoreError {
    if let rusqlite::Error::SqliteFailure(f, _) = &e
        && f.code == rusqlite::ErrorCode::ConstraintViolation
    {
        return StoreError::Conflict(e.to_string());
    }
    StoreError::Unavailable(e.to_string())
}

/// `execute` through the connection's prepared-statement cache.
pub(super) fn exec(c: &Connection, sql: &str, p: impl rusqlite::Params) -> rusqlite::Result<usize> {
    c.prepare_cached(sql)?.execute(p)
}

/// `query_row` through the connection's prepared-statement cache.
pub(super) fn qrow<T>(
    c: &Connection,
    sql: &str,
    p: impl rusqlite::Params,
    f: impl FnOnce(&rusqlite::Row<'_>) -> rusqlite::Result<T>,
) -> rusqlite::Result<T> {
    c.prepare_cached(sql)?.query_row(p, f)
}

pub(super) fn now_ms() -> Millis {
    crate::clock::now()
}

pub(super) fn parse_id<T: std::str::FromStr>(s: &str) -> Result<T, StoreError> {
    s.parse()
        .map_err(|_| StoreError::Corrupt(format!("bad id {s:?}")))
}

/// The ids in the first column of a query's rows (cached statement).
pub(super) fn ids<T: std::str::FromStr>(
    c: &Connection,
    sql: &str,
    p: impl rusqlite::Params,
) -> Result<Vec<T>, StoreError> {
    let mut st = c.prepare_cached(sql).map_err(db_err)?;
    let rows = st.query_map(p, |r| r.get::<_, String>(0)).map_err(db_err)?;
    let mut out = Vec::new();
    for row in rows {
        out.push(parse_id(&row.map_err(db_err)?)?);
    }
    Ok(out)
}

pub(super) fn parse_emotion(s: Option<String>) -> Result<Option<Emotion>, StoreError> {
    s.map(|s| {
        s.parse()
            .map_err(|_| StoreError::Corrupt(format!("bad emotion {s:?}")))
    })
    .transpose()
}

pub(super) fn votes_to_json(v: &VoteCounts) -> String {
    format!(
        "[{}]",
        v.0.iter()
            .map(|c| c.to_string())
            .collect::<Vec<_>>()
            .join(",")
    )
}

pub(super) fn votes_from_json(s: &str) -> Result<VoteCounts, StoreError> {
    let v: [u32; 7] =
        serde_json::from_str(s).map_err(|e| StoreError::Corrupt(format!("votes {s:?}: {e}")))?;
    Ok(VoteCounts(v))
}

pub(super) fn status_from(
    status: &str,
    consensus: Option<Emotion>,
) -> Result<ImageStatus, StoreError> {
    Ok(match (status, consensus) {
        ("open", _) => ImageStatus::Open,
        ("retired", Some(label)) => ImageStatus::Retired { label },
        ("disputed", _) => ImageStatus::Disputed,
        ("removed", _) => ImageStatus::Removed,
        (s, c) => return Err(StoreError::Corrupt(format!("bad status {s:?} / {c:?}"))),
    })
}

pub(super) fn consensus_of(status: &ImageStatus) -> Option<&'static str> {
    match status {
        ImageStatus::Retired { label } => Some(label.as_str()),
        _ => None,
    }
}

pub(super) fn i64_of(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

pub(super) fn u64_of(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}

pub(super) fn u32_of(v: i64) -> u32 {
    u32::try_from(v).unwrap_or(0)
}

pub(super) const PLAYER_COLS: &str =
    "id, name, role, created_ms, score, score_at_ms, streak, best_streak, answers";

pub(super) fn player_from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<PlayerRow> {
    r.try_into()
}

pub(super) type PlayerRow = (String, String, String, i64, i64, i64, i64, i64, i64);

pub(super) fn player_record(row: PlayerRow) -> Result<PlayerRecord, StoreError> {
    let (id, name, role, created, score, score_at, streak, best, answers) = row;
    Ok(PlayerRecord {
        id: parse_id(&id)?,
        name,
        role: Role::parse(&role)
            .ok_or_else(|| StoreError::Corrupt(format!("bad role {role:?}")))?,
        created: Millis(u64_of(created)),
        tally: PlayerTally {
            score: u64_of(score),
            streak: u32_of(streak),
            best_streak: u32_of(best),
            answers: u32_of(answers),
        },
        score_at: Millis(u64_of(score_at)),
    })
}

pub(super) fn load_player(
    conn: &Connection,
    id: PlayerId,
) -> Result<Option<PlayerRecord>, StoreError> {
    conn.query_row(
        &format!("SELECT {PLAYER_COLS} FROM players WHERE id = ?1"),
        params![id.to_string()],
        player_from_row,
    )
    .optional()
    .map_err(db_err)?
    .map(player_record)
    .transpose()
}

pub(super) fn reliability_from(data: Option<&str>) -> Result<Option<Reliability>, StoreError> {
    data.map(|d| {
        serde_json::from_str(d).map_err(|e| StoreError::Corrupt(format!("reliability: {e}")))
    })
    .transpose()
}

pub(super) fn load_reliability(
    c: &Connection,
    id: &str,
) -> Result<Option<Reliability>, StoreError> {
    let data: Option<String> = c
        .query_row(
            "SELECT data FROM reliability WHERE player_id = ?1",
            params![id],
            |r| r.get(0),
        )
        .optional()
        .map_err(db_err)?;
    reliability_from(data.as_deref())
}

/// Keeps what the truth pass learned about the crowd, beside the reliabilities.
pub(super) fn save_crowd(
    c: &Connection,
    crowd: &emofy_game::CrowdPrior,
    at: i64,
) -> Result<(), StoreError> {
    exec(
        c,
        "INSERT INTO reliability (player_id, data, flag, moderation, updated_ms) VALUES (?1, ?2, NULL, 'none', ?3) \
         ON CONFLICT (player_id) DO UPDATE SET data = excluded.data, updated_ms = excluded.updated_ms",
        params![crate::store::truth::CROWD_KEY, crate::store::truth::crowd_json(crowd), at],
    )
    .map_err(db_err)?;
    Ok(())
}

pub(super) fn save_reliability(
    c: &Connection,
    id: &str,
    r: &Reliability,
    at: i64,
) -> Result<(), StoreError> {
    let data = serde_json::to_string(r).map_err(|e| StoreError::Corrupt(e.to_string()))?;
    exec(
        c,
        "INSERT INTO reliability (player_id, data, flag, moderation, updated_ms) VALUES (?1, ?2, ?3, ?4, ?5) \
         ON CONFLICT (player_id) DO UPDATE SET data = excluded.data, flag = excluded.flag, moderation = excluded.moderation, updated_ms = excluded.updated_ms",
        params![
            id,
            data,
            r.flag.map(|f| f.as_str()),
            r.moderation.as_str(),
            at
        ],
    )
    .map_err(db_err)?;
    Ok(())
}

pub(super) const UPLOAD_COLUMNS: &str = "u.image_id, u.player_id, u.created_ms, u.face, u.show_to_players, \
     u.use_for_training, u.include_in_exports, u.keep_original, u.consent_version, u.consent_ms, \
     u.original IS NOT NULL, i.votes, i.status, i.consensus, \
     (SELECT l.emotion FROM labels l WHERE l.image_id = u.image_id AND l.player_id = u.player_id)";

pub(super) type UploadRow = (
    String,
    String,
    i64,
    String,
    bool,
    bool,
    bool,
    bool,
    String,
    i64,
    bool,
    String,
    String,
    Option<String>,
    Option<String>,
);

pub(super) fn upload_from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<UploadRow> {
    UploadRow::try_from(r)
}

pub(super) fn upload_record(row: UploadRow) -> Result<UploadRecord, StoreError> {
    let (
        image,
        player,
        created,
        face,
        show,
        train,
        export,
        keep,
        version,
        consent_ms,
        has_original,
        votes,
        status,
        consensus,
        label,
    ) = row;
    let face: [f64; 5] = serde_json::from_str(&face)
        .map_err(|e| StoreError::Corrupt(format!("upload face box: {e}")))?;
    Ok(UploadRecord {
        image: parse_id(&image)?,
        player: parse_id(&player)?,
        created: Millis(u64_of(created)),
        face: FaceRegion {
            x: face[0] as u32,
            y: face[1] as u32,
            w: face[2] as u32,
            h: face[3] as u32,
            score: face[4],
        },
        consent: Consent {
            show_to_players: show,
            use_for_training: train,
            include_in_exports: export,
            keep_original: keep,
            text_version: version,
        },
        consent_at: Millis(u64_of(consent_ms)),
        has_original,
        label: parse_emotion(label)?,
        votes: votes_from_json(&votes)?,
        status: status_from(&status, parse_emotion(consensus)?)?,
    })
}

pub(super) type LabelRow = (
    String,
    String,
    String,
    String,
    Option<String>,
    i64,
    i64,
    i64,
    bool,
    bool,
);

pub(super) fn label_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<LabelRow> {
    LabelRow::try_from(r)
}

pub(super) fn label_record(row: LabelRow) -> Result<LabelRecord, StoreError> {
    let (round, image, player, emotion, shown, response_ms, points, at, decoy, gold) = row;
    Ok(LabelRecord {
        round: parse_id(&round)?,
        image: parse_id(&image)?,
        player: parse_id(&player)?,
        emotion: parse_emotion(Some(emotion))?
            .ok_or_else(|| StoreError::Corrupt("label".into()))?,
        shown: parse_emotion(shown)?,
        decoy,
        gold,
        response_ms: u64_of(response_ms),
        points: u32_of(points),
        at: Millis(u64_of(at)),
    })
}

pub(super) fn log_consent(
    c: &Connection,
    image: &str,
    player: &str,
    event: &str,
    consent: &Consent,
    at: i64,
) -> Result<(), StoreError> {
    exec(
        c,
        "INSERT INTO consent_log (image_id, player_id, event, show_to_players, use_for_training, \
         include_in_exports, keep_original, consent_version, at_ms) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
        params![
            image,
            player,
            event,
            consent.show_to_players,
            consent.use_for_training,
            consent.include_in_exports,
            consent.keep_original,
            consent.text_version,
            at
        ],
    )
    .map_err(db_err)?;
    Ok(())
}

pub(super) fn audit(
    c: &Connection,
    moderator: PlayerId,
    action: &str,
    target: &str,
    detail: serde_json::Value,
    at: Millis,
) -> Result<(), StoreError> {
    exec(
        c,
        "INSERT INTO moderation_log (moderator, action, target, detail, at_ms) VALUES (?1, ?2, ?3, ?4, ?5)",
        params![moderator.to_string(), action, target, detail.to_string(), i64_of(at.0)],
    )
    .map_err(db_err)?;
    Ok(())
}
