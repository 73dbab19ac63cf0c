//! Error mapping and document codecs shared by the store's parts.

use super::MongoStore;
use super::prelude::*;
use mongodb::error::{ErrorKind, WriteFailure};

pub(super) fn is_duplicate(e: &mongodb::error::Error) -> bool {
    match e.kind.as_ref() {
        ErrorKind::Write(WriteFailure::WriteError(w)) => w.code == 11000,
        ErrorKind::Command(c) => c.code == 11000,
        ErrorKind::InsertMany(m) => m
            .write_errors
            .as_ref()
            .is_some_and(|errs| errs.iter().all(|w| w.code == 11000)),
        _ => e.to_string().contains("E11000"),
    }
}

pub(super) const TRANSIENT: &str = "mongodb (transient): ";

impl From<mongodb::error::Error> for StoreError {
    fn from(e: mongodb::error::Error) -> StoreError {
        err(e)
    }
}

pub(super) fn err(e: mongodb::error::Error) -> StoreError {
    // A server that cannot be reached is not worth a retry of the whole
    // transaction: selecting a server already waited its timeout.
    let unreachable = matches!(
        e.kind.as_ref(),
        ErrorKind::ServerSelection { .. }
            | ErrorKind::Io(_)
            | ErrorKind::ConnectionPoolCleared { .. }
    );
    if is_duplicate(&e) {
        StoreError::Conflict(e.to_string())
    } else if !unreachable
        && (e.contains_label(mongodb::error::TRANSIENT_TRANSACTION_ERROR)
            || e.contains_label(mongodb::error::UNKNOWN_TRANSACTION_COMMIT_RESULT))
    {
        StoreError::Unavailable(format!("{TRANSIENT}{e}"))
    } else {
        StoreError::Unavailable(format!("mongodb: {e}"))
    }
}

/// A transaction that failed for a reason worth retrying it whole (a write
/// conflict with a concurrent transaction, a commit whose result is unknown).
pub(super) fn transient(e: &StoreError) -> bool {
    matches!(e, StoreError::Unavailable(m) if m.starts_with(TRANSIENT))
}

pub(super) fn corrupt(what: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(what.to_string())
}

pub(super) fn i64_of(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

pub(super) fn get_i64(d: &Document, k: &str) -> Result<i64, StoreError> {
    match d.get(k) {
        Some(Bson::Int64(v)) => Ok(*v),
        Some(Bson::Int32(v)) => Ok(i64::from(*v)),
        Some(Bson::Double(v)) => Ok(*v as i64),
        other => Err(corrupt(format!("field {k}: {other:?}"))),
    }
}

pub(super) fn get_u64(d: &Document, k: &str) -> Result<u64, StoreError> {
    Ok(u64::try_from(get_i64(d, k)?).unwrap_or(0))
}

pub(super) fn get_u32(d: &Document, k: &str) -> Result<u32, StoreError> {
    Ok(u32::try_from(get_i64(d, k)?).unwrap_or(0))
}

pub(super) fn get_str<'a>(d: &'a Document, k: &str) -> Result<&'a str, StoreError> {
    d.get_str(k).map_err(|e| corrupt(format!("field {k}: {e}")))
}

pub(super) fn opt_str(d: &Document, k: &str) -> Option<String> {
    d.get_str(k).ok().map(str::to_owned)
}

pub(super) fn get_bool(d: &Document, k: &str) -> bool {
    d.get_bool(k).unwrap_or(false)
}

pub(super) fn parse_id<T: std::str::FromStr>(s: &str) -> Result<T, StoreError> {
    s.parse().map_err(|_| corrupt(format!("bad id {s:?}")))
}

pub(super) fn emotion(s: Option<String>) -> Result<Option<Emotion>, StoreError> {
    s.map(|e| e.parse().map_err(|_| corrupt(format!("bad emotion {e:?}"))))
        .transpose()
}

pub(super) fn votes_of(d: &Document) -> Result<VoteCounts, StoreError> {
    let arr = d
        .get_array("votes")
        .map_err(|e| corrupt(format!("votes: {e}")))?;
    let mut v = VoteCounts::default();
    if arr.len() != v.0.len() {
        return Err(corrupt("votes length"));
    }
    for (slot, b) in v.0.iter_mut().zip(arr) {
        *slot = match b {
            Bson::Int32(n) => u32::try_from(*n).unwrap_or(0),
            Bson::Int64(n) => u32::try_from(*n).unwrap_or(0),
            other => return Err(corrupt(format!("vote {other:?}"))),
        };
    }
    Ok(v)
}

pub(super) fn votes_bson(v: &VoteCounts) -> Bson {
    Bson::Array(v.0.iter().map(|n| Bson::Int64(i64::from(*n))).collect())
}

pub(super) fn status_of(d: &Document) -> Result<ImageStatus, StoreError> {
    let status = get_str(d, "status")?;
    let consensus = emotion(opt_str(d, "consensus"))?;
    Ok(match (status, consensus) {
        ("open", _) => ImageStatus::Open,
        ("retired", Some(label)) => ImageStatus::Retired { label },
        ("disputed", _) => ImageStatus::Disputed,
        ("removed", _) => ImageStatus::Removed,
        (s, _) => return Err(corrupt(format!("bad status {s:?}"))),
    })
}

pub(super) fn consensus_bson(s: &ImageStatus) -> Bson {
    match s {
        ImageStatus::Retired { label } => Bson::String(label.as_str().into()),
        _ => Bson::Null,
    }
}

pub(super) fn player_record(d: &Document) -> Result<PlayerRecord, StoreError> {
    let role = get_str(d, "role")?;
    Ok(PlayerRecord {
        id: parse_id(get_str(d, "_id")?)?,
        name: get_str(d, "name")?.to_owned(),
        role: Role::parse(role).ok_or_else(|| corrupt(format!("bad role {role:?}")))?,
        created: Millis(get_u64(d, "created_ms")?),
        tally: PlayerTally {
            score: get_u64(d, "score")?,
            streak: get_u32(d, "streak")?,
            best_streak: get_u32(d, "best_streak")?,
            answers: get_u32(d, "answers")?,
        },
        score_at: Millis(get_u64(d, "score_at_ms")?),
    })
}

pub(super) fn binary(bytes: Vec<u8>) -> Bson {
    Bson::Binary(mongodb::bson::Binary {
        subtype: BinarySubtype::Generic,
        bytes,
    })
}

pub(super) fn bytes_of(d: &Document, k: &str) -> Option<Vec<u8>> {
    match d.get(k) {
        Some(Bson::Binary(b)) => Some(b.bytes.clone()),
        _ => None,
    }
}

/// Every document a find returns.
pub(super) async fn all(
    find: mongodb::action::Find<'_, Document>,
) -> Result<Vec<Document>, StoreError> {
    find.await.map_err(err)?.try_collect().await.map_err(err)
}

/// Adds "strictly after `(ms, id)` in newest-first order" to a keyset-paged filter.
pub(super) fn older_than(filter: &mut Document, ms: i64, id: String) {
    filter.insert(
        "$or",
        vec![
            doc! {"created_ms": {"$lt": ms}},
            doc! {"created_ms": ms, "_id": {"$lt": id}},
        ],
    );
}

pub(super) fn new_player(id: PlayerId, name: &str, role: Role, at: Millis) -> Document {
    doc! {
        "_id": id.to_string(), "name": name, "role": role.as_str(), "created_ms": i64_of(at.0),
        "score": 0_i64, "score_at_ms": 0_i64, "streak": 0_i64, "best_streak": 0_i64, "answers": 0_i64,
    }
}

pub(super) fn image_doc(id: ImageId, image: &NewImage, at: Millis, playable: bool) -> Document {
    doc! {
        "_id": id.to_hex(),
        "mime": &image.mime,
        "width": i64::from(image.width),
        "height": i64::from(image.height),
        "source": image.source.as_str(),
        "source_label": image.source_label.map(|e| e.as_str()),
        "uploader": image.uploader.map(|p| p.to_string()),
        "created_ms": i64_of(at.0),
        "updated_ms": i64_of(at.0),
        "votes": votes_bson(&VoteCounts::default()),
        "status": "open",
        "consensus": Bson::Null,
        "playable": playable,
    }
}

pub(super) fn pool_entry(d: &Document) -> Result<PoolEntry, StoreError> {
    Ok(PoolEntry {
        image: parse_id(get_str(d, "_id")?)?,
        uploader: opt_str(d, "uploader").map(|u| parse_id(&u)).transpose()?,
        votes: votes_of(d)?,
        status: status_of(d)?,
        leading: truth::leading(truth::posterior_from(opt_str(d, "posterior").as_deref())),
        model_guess: emotion(opt_str(d, "model_guess"))?,
    })
}

pub(super) fn prediction_of(d: &Document, model: &str) -> Result<Prediction, StoreError> {
    let arr = d
        .get_array("probabilities")
        .map_err(|e| corrupt(format!("probabilities: {e}")))?;
    let mut probs = [0f32; 7];
    if arr.len() != 7 {
        return Err(corrupt("probabilities length"));
    }
    for (p, b) in probs.iter_mut().zip(arr) {
        *p = b.as_f64().ok_or_else(|| corrupt("probability"))? as f32;
    }
    Prediction::new(model, probs).map_err(corrupt)
}

pub(super) fn upload_record(
    u: &Document,
    image: &Document,
    label: Option<Emotion>,
) -> Result<UploadRecord, StoreError> {
    let face = u
        .get_document("face")
        .map_err(|e| corrupt(format!("face: {e}")))?;
    Ok(UploadRecord {
        image: parse_id(get_str(u, "_id")?)?,
        player: parse_id(get_str(u, "player_id")?)?,
        created: Millis(get_u64(u, "created_ms")?),
        face: FaceRegion {
            x: get_u32(face, "x")?,
            y: get_u32(face, "y")?,
            w: get_u32(face, "w")?,
            h: get_u32(face, "h")?,
            score: face.get_f64("score").unwrap_or(0.0),
        },
        consent: Consent {
            show_to_players: get_bool(u, "show_to_players"),
            use_for_training: get_bool(u, "use_for_training"),
            include_in_exports: get_bool(u, "include_in_exports"),
            keep_original: get_bool(u, "keep_original"),
            text_version: get_str(u, "consent_version")?.to_owned(),
        },
        consent_at: Millis(get_u64(u, "consent_ms")?),
        has_original: matches!(u.get("original"), Some(Bson::Binary(_))),
        label,
        votes: votes_of(image)?,
        status: status_of(image)?,
    })
}

pub(super) fn label_of(d: &Document) -> Result<LabelRecord, StoreError> {
    Ok(LabelRecord {
        round: parse_id(get_str(d, "_id")?)?,
        image: parse_id(get_str(d, "image_id")?)?,
        player: parse_id(get_str(d, "player_id")?)?,
        emotion: emotion(opt_str(d, "emotion"))?.ok_or_else(|| corrupt("label emotion"))?,
        shown: emotion(opt_str(d, "shown"))?,
        decoy: get_bool(d, "decoy"),
        gold: get_bool(d, "gold"),
        response_ms: get_u64(d, "response_ms")?,
        points: get_u32(d, "points")?,
        at: Millis(get_u64(d, "created_ms")?),
    })
}

pub(super) fn reliability_of(d: &Document) -> Result<Reliability, StoreError> {
    serde_json::from_str(get_str(d, "data")?).map_err(|e| corrupt(format!("reliability: {e}")))
}

pub(crate) fn reliability_doc(id: &str, r: &Reliability, at: i64) -> Result<Document, StoreError> {
    Ok(doc! {
        "_id": id,
        "data": serde_json::to_string(r).map_err(|e| corrupt(e.to_string()))?,
        "flag": r.flag.map(|f| f.as_str()),
        "moderation": r.moderation.as_str(),
        "updated_ms": at,
    })
}

pub(super) async fn load_reliability(
    store: &MongoStore,
    s: &mut ClientSession,
    id: &str,
) -> Result<Option<Reliability>, StoreError> {
    store
        .coll("reliability")
        .find_one(doc! {"_id": id})
        .session(&mut *s)
        .await
        .map_err(err)?
        .map(|d| reliability_of(&d))
        .transpose()
}

pub(super) async fn save_reliability(
    store: &MongoStore,
    s: &mut ClientSession,
    id: &str,
    r: &Reliability,
    at: i64,
) -> Result<(), StoreError> {
    store
        .coll("reliability")
        .replace_one(doc! {"_id": id}, reliability_doc(id, r, at)?)
        .upsert(true)
        .session(&mut *s)
        .await
        .map_err(err)?;
    Ok(())
}

pub(super) fn consent_event(
    image: &str,
    player: &str,
    event: &str,
    c: &Consent,
    at: i64,
) -> Document {
    doc! {
        "image_id": image, "player_id": player, "event": event,
        "show_to_players": c.show_to_players, "use_for_training": c.use_for_training,
        "include_in_exports": c.include_in_exports, "keep_original": c.keep_original,
        "consent_version": &c.text_version, "at_ms": at,
    }
}
