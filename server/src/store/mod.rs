//! Storage behind small traits.
//!
//! Everything that must agree across server replicas (players and their
//! totals, images and their votes and status, who has seen which image,
//! labels) lives behind these traits; actors only cache it. The embedded
//! implementation is [`sqlite::SqliteStore`]; production adapters (MongoDB,
//! Redis) implement the same traits.

pub use emofy_game::plan::{
    AnswerOutcome, AnswerRecord, GameRules, ImageAction, PlayerAction, ScoreChange, ScoreReason,
};

pub mod lease;
pub mod migrate;
pub mod mongo;
pub mod registry;
pub mod sqlite;
pub mod truth;

use std::collections::HashMap;

use async_trait::async_trait;
use emofy_game::{
    Emotion, ImageId, ImageStatus, Millis, PlayerId, PlayerTally, PoolEntry, Role, RoundId,
    VoteCounts,
};
use emofy_inference::Prediction;
use serde::Serialize;

pub use lease::{LeaseStore, TRAINING_LEASE};
pub use registry::{ModelRecord, ModelStore, NewModel};

/// Errors from a store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The storage backend is unreachable or overloaded; nothing was written.
    #[error("store unavailable: {0}")]
    Unavailable(String),
    /// A uniqueness rule refused the write (e.g. the player already has this image).
    #[error("conflict: {0}")]
    Conflict(String),
    #[error("not found: {0}")]
    NotFound(String),
    /// The round is not open for answers in the store (answered, timed out, abandoned).
    #[error("round {0} is not open")]
    RoundClosed(RoundId),
    /// Stored data could not be read back (corruption or a bug).
    #[error("corrupt data: {0}")]
    Corrupt(String),
}

impl StoreError {
    /// The error for an answer its plan refused.
    pub fn refused(r: emofy_game::plan::AnswerRefusal, a: &AnswerRecord) -> StoreError {
        use emofy_game::plan::AnswerRefusal as R;
        match r {
            R::RoundNotFound => {
                StoreError::NotFound(format!("round {} for this player and image", a.round))
            }
            R::RoundClosed => StoreError::RoundClosed(a.round),
            R::ImageNotFound => StoreError::NotFound(format!("image {}", a.image)),
            R::PlayerNotFound => StoreError::NotFound(format!("player {}", a.player)),
        }
    }
}

/// A player as stored.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PlayerRecord {
    pub id: PlayerId,
    pub name: String,
    pub role: Role,
    pub created: Millis,
    pub tally: PlayerTally,
    /// When the score last changed (leaderboard tie-break: earlier first).
    pub score_at: Millis,
}

/// A moderator/admin account.
#[derive(Debug, Clone, PartialEq)]
pub struct AccountRecord {
    pub username: String,
    pub player: PlayerId,
    pub password_hash: String,
    pub role: Role,
    /// Failed sign-ins (the soft lockout's state, [`emofy_game::login`]).
    pub failures: emofy_game::login::LoginFailures,
}

/// Where an image came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ImageSource {
    /// Drawn by the procedural demo-face generator (synthetic).
    Demo,
    /// Imported by an operator (`emofy import`).
    Import,
    /// Uploaded by a contributor.
    Upload,
}

impl ImageSource {
    pub fn as_str(self) -> &'static str {
        match self {
            ImageSource::Demo => "demo",
            ImageSource::Import => "import",
            ImageSource::Upload => "upload",
        }
    }

    pub fn parse(s: &str) -> Option<ImageSource> {
        match s {
            "demo" => Some(ImageSource::Demo),
            "import" => Some(ImageSource::Import),
            "upload" => Some(ImageSource::Upload),
            _ => None,
        }
    }

    /// What the label an image came with is, for truth inference: the demo
    /// generator's drawn emotion or an imported dataset's label (an upload
    /// comes with none: its contributor's own label is a label like any).
    pub fn known(self, source_label: Option<Emotion>) -> Option<emofy_game::KnownLabel> {
        let source = match self {
            ImageSource::Demo => emofy_game::KnownSource::Demo,
            ImageSource::Import => emofy_game::KnownSource::Dataset,
            ImageSource::Upload => return None,
        };
        source_label.map(|label| emofy_game::KnownLabel { label, source })
    }

    /// [`ImageSource::known`] from the stored source name (`None` for an
    /// unknown name).
    pub fn known_of(source: &str, source_label: Option<Emotion>) -> Option<emofy_game::KnownLabel> {
        ImageSource::parse(source)?.known(source_label)
    }
}

/// An image to add.
#[derive(Debug, Clone)]
pub struct NewImage {
    pub bytes: Vec<u8>,
    pub mime: String,
    pub width: u32,
    pub height: u32,
    pub source: ImageSource,
    /// The label the source claims (generator intent, dataset label); never counted as a vote.
    pub source_label: Option<Emotion>,
    pub uploader: Option<PlayerId>,
}

/// The stores behind their traits: MongoDB when `storage.mongodb.uri` is
/// set, else the embedded SQLite store.
pub struct Stores {
    pub players: std::sync::Arc<dyn PlayerStore>,
    pub images: std::sync::Arc<dyn ImageStore>,
    pub rounds: std::sync::Arc<dyn RoundStore>,
    pub uploads: std::sync::Arc<dyn UploadStore>,
    pub review: std::sync::Arc<dyn ReviewStore>,
    /// The model registry.
    pub models: std::sync::Arc<dyn ModelStore>,
    /// Named leases (one training run at a time across replicas).
    pub leases: std::sync::Arc<dyn LeaseStore>,
}

/// Metadata of a stored image.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ImageMeta {
    pub id: ImageId,
    pub mime: String,
    pub width: u32,
    pub height: u32,
    pub source: ImageSource,
    pub source_label: Option<Emotion>,
    pub uploader: Option<PlayerId>,
    pub votes: VoteCounts,
    pub status: ImageStatus,
    pub created: Millis,
    /// The truth posterior over the seven classes, once anyone labelled it.
    pub posterior: Option<[f64; emofy_game::EMOTION_COUNT]>,
    /// The moderator-verified label, if any.
    pub gold: Option<Emotion>,
}

/// An offered round, as persisted.
#[derive(Debug, Clone, PartialEq)]
pub struct OfferRecord {
    pub round: RoundId,
    pub player: PlayerId,
    pub image: ImageId,
    pub shown: Option<Emotion>,
    pub offered: Millis,
    pub deadline: Millis,
}

/// A stored label (append-only).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LabelRecord {
    pub round: RoundId,
    pub image: ImageId,
    pub player: PlayerId,
    pub emotion: Emotion,
    /// The suggestion the player was shown, if any.
    pub shown: Option<Emotion>,
    /// The shown suggestion was a test (a wrong class), not the model's output.
    pub decoy: bool,
    /// The round was a gold round (the image has a verified label).
    pub gold: bool,
    pub response_ms: u64,
    pub points: u32,
    pub at: Millis,
}

/// Where a page of labels starts (exclusive): the last row of the previous page.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LabelCursor {
    pub at: Millis,
    pub round: RoundId,
}

/// Counts for dashboards and tests.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Stats {
    pub players: u64,
    pub images: u64,
    pub open: u64,
    pub retired: u64,
    pub disputed: u64,
    pub removed: u64,
    pub labels: u64,
    pub rounds: u64,
}

/// A moderation's audit detail as the log stores it (JSON).
pub(crate) fn detail_json<T: Serialize>(detail: &T) -> Result<serde_json::Value, StoreError> {
    serde_json::to_value(detail).map_err(|e| StoreError::Corrupt(format!("audit detail: {e}")))
}

/// Players and accounts.
#[async_trait]
pub trait PlayerStore: Send + Sync {
    async fn create_player(
        &self,
        id: PlayerId,
        name: &str,
        role: Role,
        at: Millis,
    ) -> Result<PlayerRecord, StoreError>;
    async fn player(&self, id: PlayerId) -> Result<Option<PlayerRecord>, StoreError>;
    /// Every player with a positive score (to seed an in-process leaderboard).
    async fn scored_players(&self) -> Result<Vec<PlayerRecord>, StoreError>;
    /// Creates an account and its player; fails with `Conflict` if the username exists.
    async fn create_account(
        &self,
        account: AccountRecord,
        name: &str,
        at: Millis,
    ) -> Result<(), StoreError>;
    async fn account(&self, username: &str) -> Result<Option<AccountRecord>, StoreError>;
    /// Gives an existing player (a guest) an account: same player id,
    /// score, streaks, labels and uploads. `Conflict` if the username is
    /// taken or the player has an account already; `NotFound` for an
    /// unknown player.
    async fn register_account(
        &self,
        player: PlayerId,
        username: &str,
        password_hash: &str,
        at: Millis,
    ) -> Result<(), StoreError>;
    /// Replaces an account's password hash (`NotFound` for no such account).
    async fn set_password(&self, username: &str, password_hash: &str) -> Result<(), StoreError>;
    /// The username of a player's account, if they have one.
    async fn username_of(&self, player: PlayerId) -> Result<Option<String>, StoreError>;
    /// Takes a sign-in attempt's turn before its password is checked: if the
    /// account's failures are still `seen`, stores `next` (the attempt
    /// counted as failed in advance) and answers true; false when another
    /// attempt changed them first (read again). Concurrent guesses so each
    /// need a turn of their own, and none slips past the lockout.
    async fn claim_login_attempt(
        &self,
        username: &str,
        seen: emofy_game::login::LoginFailures,
        next: emofy_game::login::LoginFailures,
    ) -> Result<bool, StoreError>;
    /// Clears an account's failures (a successful sign-in).
    async fn clear_login_failures(&self, username: &str) -> Result<(), StoreError>;
}

/// Images: bytes (content-addressed) and metadata.
#[async_trait]
pub trait ImageStore: Send + Sync {
    /// Stores an image; returns its id and whether it was new (identical bytes are stored once).
    async fn insert_image(
        &self,
        image: NewImage,
        at: Millis,
    ) -> Result<(ImageId, bool), StoreError>;
    async fn image_bytes(&self, id: ImageId) -> Result<Option<(Vec<u8>, String)>, StoreError>;
    async fn image_meta(&self, id: ImageId) -> Result<Option<ImageMeta>, StoreError>;
    /// The metadata of each of `images`, in one read (unknown ids are left out).
    async fn image_metas(
        &self,
        images: &[ImageId],
    ) -> Result<HashMap<ImageId, ImageMeta>, StoreError>;
    /// Pool entries of images changed at or after `since` (all images for `Millis(0)`).
    async fn pool_entries(&self, since: Millis) -> Result<Vec<PoolEntry>, StoreError>;
    async fn image_count(&self) -> Result<u64, StoreError>;
    /// Caches model predictions (one per image and model version; a repeat replaces it).
    async fn save_predictions(
        &self,
        predictions: Vec<(ImageId, Prediction)>,
    ) -> Result<(), StoreError>;
    /// The cached prediction of `model` for one image.
    async fn prediction(&self, id: ImageId, model: &str) -> Result<Option<Prediction>, StoreError>;
    /// `model`'s predictions for each of `images`, in one read (unclassified
    /// images are left out).
    async fn predictions_of(
        &self,
        images: &[ImageId],
        model: &str,
    ) -> Result<HashMap<ImageId, Prediction>, StoreError>;
    /// Every cached prediction of `model`.
    async fn predictions(&self, model: &str) -> Result<Vec<(ImageId, Prediction)>, StoreError>;
    /// Images (not removed) with no cached prediction from `model`.
    async fn unpredicted_images(&self, model: &str) -> Result<Vec<ImageId>, StoreError>;
    async fn stats(&self) -> Result<Stats, StoreError>;
    /// Every image's metadata, by id, after `after`, at most `limit` (exports, migrations).
    async fn all_images(
        &self,
        after: Option<ImageId>,
        limit: usize,
    ) -> Result<Vec<ImageMeta>, StoreError>;
    /// Images with a moderator-verified label that are still in play (gold rounds).
    async fn gold_images(&self) -> Result<Vec<ImageId>, StoreError>;
    /// Sets an image's votes and status as another store had them (imports
    /// of exports, migrations). Not part of the answer path.
    async fn restore_tally(
        &self,
        id: ImageId,
        votes: VoteCounts,
        status: ImageStatus,
        at: Millis,
    ) -> Result<(), StoreError>;
}

/// What a contributor agreed to, and when. Faces are biometric data: each
/// use needs its own scope, and deleting the upload revokes them all.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Consent {
    /// Other players may see the face crop in rounds.
    pub show_to_players: bool,
    /// The face and its consensus label may train the model.
    pub use_for_training: bool,
    /// The face may be included in dataset exports.
    pub include_in_exports: bool,
    /// Keep the whole photo (EXIF removed), not only the face crop.
    #[serde(default)]
    pub keep_original: bool,
    /// The version of the consent text the contributor was shown.
    pub text_version: String,
}

/// Where the face is in the uploaded photo, in its pixels.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct FaceRegion {
    pub x: u32,
    pub y: u32,
    pub w: u32,
    pub h: u32,
    pub score: f64,
}

/// A contributed photo to store: the face crop becomes an image.
#[derive(Debug, Clone)]
pub struct NewUpload {
    pub player: PlayerId,
    /// The face crop (PNG); stored as an image with source `upload`.
    pub crop: NewImage,
    /// The re-encoded whole photo, only when consent says `keep_original`.
    pub original: Option<Vec<u8>>,
    pub face: FaceRegion,
    pub consent: Consent,
    /// Finds this contributor's duplicates (the crop's pixels hashed with the
    /// contributor's id): one contributor cannot store the same face twice;
    /// two contributors can, as two images.
    pub fingerprint: String,
}

/// Who may see an upload: its contributor, and what it consented to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UploadAccess {
    pub contributor: PlayerId,
    pub show_to_players: bool,
}

/// An upload as its contributor sees it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct UploadRecord {
    pub image: ImageId,
    pub player: PlayerId,
    pub created: Millis,
    pub face: FaceRegion,
    pub consent: Consent,
    pub consent_at: Millis,
    pub has_original: bool,
    /// The contributor's own label, once given.
    pub label: Option<Emotion>,
    pub votes: VoteCounts,
    pub status: ImageStatus,
}

/// One entry of the consent audit log (append-only).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ConsentEvent {
    pub image: ImageId,
    pub player: PlayerId,
    /// `given` (an upload with these scopes) or `revoked` (the upload was deleted).
    pub event: String,
    pub consent: Consent,
    pub at: Millis,
}

/// Where a page of uploads starts (exclusive): the last row of the previous page.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UploadCursor {
    pub created: Millis,
    pub image: ImageId,
}

/// Contributed photos and their consent records.
#[async_trait]
pub trait UploadStore: Send + Sync {
    /// Stores the crop (and the original, if consented) with the consent
    /// record, atomically. `Conflict` if this contributor has a live upload
    /// with the same fingerprint (or the same bytes are stored already).
    /// A crop whose consent lacks `show_to_players` never enters rounds.
    async fn insert_upload(&self, upload: NewUpload, at: Millis) -> Result<ImageId, StoreError>;
    /// Who may see the upload behind `image`: `None` when the image is not a
    /// live upload (never one, or deleted).
    async fn upload_access(&self, image: ImageId) -> Result<Option<UploadAccess>, StoreError>;
    /// How many uploads `player` made at or after `since` (deleted ones included: a rate limit).
    async fn uploads_since(&self, player: PlayerId, since: Millis) -> Result<u64, StoreError>;
    /// The consent audit log of one image, oldest first.
    async fn consent_log(&self, image: ImageId) -> Result<Vec<ConsentEvent>, StoreError>;
    /// Whether an uploaded image may be exported: its contributor consented
    /// (`include_in_exports`) and has not deleted it. `false` for non-uploads.
    async fn export_allowed(&self, image: ImageId) -> Result<bool, StoreError>;
    /// Whether an uploaded image may train the model: its contributor
    /// consented (`use_for_training`) and has not deleted it. `false` for
    /// non-uploads.
    async fn training_allowed(&self, image: ImageId) -> Result<bool, StoreError>;
    /// One of `player`'s uploads (not deleted).
    async fn upload(
        &self,
        player: PlayerId,
        image: ImageId,
    ) -> Result<Option<UploadRecord>, StoreError>;
    /// `player`'s uploads, newest first, after `cursor`, at most `limit`.
    async fn uploads(
        &self,
        player: PlayerId,
        cursor: Option<UploadCursor>,
        limit: usize,
    ) -> Result<Vec<UploadRecord>, StoreError>;
    /// Deletes one of `player`'s uploads: the crop's and the original's bytes
    /// and cached predictions are erased, the image is marked removed (out of
    /// rounds, exports and training), and the consent record keeps only the
    /// time of revocation. `false` if there was no such upload.
    async fn delete_upload(
        &self,
        player: PlayerId,
        image: ImageId,
        at: Millis,
    ) -> Result<bool, StoreError>;
}

/// Rounds and labels: the answer path.
#[async_trait]
pub trait RoundStore: Send + Sync {
    /// Persists an offer; `Conflict` if this player was already offered this image.
    async fn record_offer(&self, offer: OfferRecord) -> Result<(), StoreError>;
    /// Closes an open round without an answer (`timed_out` or `abandoned`).
    async fn close_round(
        &self,
        round: RoundId,
        state: &'static str,
        at: Millis,
    ) -> Result<(), StoreError>;
    /// Images this player has been offered.
    async fn seen_images(&self, player: PlayerId) -> Result<Vec<ImageId>, StoreError>;
    /// Atomically: records the label, updates the image's votes and status,
    /// scores the answer, settles a retired image, and updates player totals.
    /// Durable when it returns `Ok`.
    async fn record_answer(
        &self,
        answer: AnswerRecord,
        rules: &GameRules,
    ) -> Result<AnswerOutcome, StoreError>;
    /// A player's labels, newest first, after `cursor`, at most `limit`.
    async fn player_labels(
        &self,
        player: PlayerId,
        cursor: Option<LabelCursor>,
        limit: usize,
    ) -> Result<Vec<LabelRecord>, StoreError>;
    /// An image's labels, oldest first, at most `limit`.
    async fn image_labels(
        &self,
        image: ImageId,
        limit: usize,
    ) -> Result<Vec<LabelRecord>, StoreError>;
    /// The labels of each of `images`, oldest first, at most `per_image`
    /// each, in one read (images without labels are left out).
    async fn labels_of_images(
        &self,
        images: &[ImageId],
        per_image: usize,
    ) -> Result<HashMap<ImageId, Vec<LabelRecord>>, StoreError>;
    /// Score changes (the ledger written with each answer) at or after
    /// `since`, oldest first, at most `limit`.
    async fn score_events_since(
        &self,
        since: Millis,
        limit: usize,
    ) -> Result<Vec<ScoreChange>, StoreError>;
    /// Waits until every accepted write is durable.
    async fn flush(&self) -> Result<(), StoreError>;
}

/// Leaderboards: one board per period bucket (see [`crate::leaderboard`]
/// for the ordering every implementation shares).
#[async_trait]
pub trait Leaderboard: Send + Sync {
    /// Adds each change's points to the all-time, daily and weekly boards of
    /// its time, once per idempotency key: applying a change again has no effect.
    async fn apply(&self, changes: &[ScoreChange]) -> Result<(), StoreError>;
    /// The top `n` rows of a board, best first.
    async fn top(
        &self,
        bucket: &emofy_game::Bucket,
        n: usize,
    ) -> Result<Vec<crate::protocol::LeaderboardRow>, StoreError>;
    /// The rows from `k` above to `k` below `player` (empty if unranked).
    async fn around(
        &self,
        bucket: &emofy_game::Bucket,
        player: PlayerId,
        k: usize,
    ) -> Result<Vec<crate::protocol::LeaderboardRow>, StoreError>;
    /// A player's rank (1-based) and points on a board, if ranked.
    async fn standing(
        &self,
        bucket: &emofy_game::Bucket,
        player: PlayerId,
    ) -> Result<Option<crate::protocol::OwnStanding>, StoreError>;
    /// Number of ranked players on a board.
    async fn count(&self, bucket: &emofy_game::Bucket) -> Result<u64, StoreError>;
}

/// An image waiting for a moderator's look, with what truth inference knows.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ReviewCandidate {
    pub meta: ImageMeta,
    pub posterior: Option<[f64; emofy_game::EMOTION_COUNT]>,
    pub model_guess: Option<Emotion>,
    pub gold: Option<Emotion>,
}

/// What a moderation of an image did.
#[derive(Debug, Clone, PartialEq)]
pub struct ModeratedImage {
    pub status: ImageStatus,
    pub gold: Option<Emotion>,
    /// Settlement points paid because the image retired now.
    pub changes: Vec<ScoreChange>,
}

/// A player with their reliability, for the moderators' table.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PlayerReliability {
    pub player: PlayerId,
    pub name: String,
    pub reliability: emofy_game::Reliability,
}

/// One audited moderator action.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct AuditEntry {
    #[schema(value_type = uuid::Uuid)]
    pub moderator: PlayerId,
    pub action: String,
    pub target: String,
    #[schema(value_type = Object)]
    pub detail: serde_json::Value,
    #[schema(value_type = u64)]
    pub at: Millis,
}

/// Whether a moderator banned `player` (their reliability record says so).
pub async fn is_banned(review: &dyn ReviewStore, player: PlayerId) -> Result<bool, StoreError> {
    Ok(review
        .reliabilities_of(&[player])
        .await?
        .iter()
        .any(|(_, r)| r.moderation == emofy_game::Moderation::Banned))
}

/// Moderation: the review queue's candidates, decisions on images and
/// players, the reliability table and the audit log. Every decision is
/// written with its audit entry in one transaction.
#[async_trait]
pub trait ReviewStore: Send + Sync {
    /// Disputed images and open images with labels, most recently changed first, at most `limit`.
    async fn review_candidates(&self, limit: usize) -> Result<Vec<ReviewCandidate>, StoreError>;
    async fn moderate_image(
        &self,
        image: ImageId,
        action: ImageAction,
        moderator: PlayerId,
        at: Millis,
        rules: &GameRules,
    ) -> Result<ModeratedImage, StoreError>;
    async fn moderate_player(
        &self,
        player: PlayerId,
        action: PlayerAction,
        moderator: PlayerId,
        at: Millis,
    ) -> Result<emofy_game::Reliability, StoreError>;
    /// Sets a player's role (an admin's decision), audited as `set_role`
    /// with the role before and after; returns the role before.
    /// `NotFound` for an unknown player.
    async fn set_role(
        &self,
        player: PlayerId,
        role: Role,
        admin: PlayerId,
        at: Millis,
    ) -> Result<Role, StoreError>;
    /// Players with a reliability record (only flagged or banned ones with
    /// `flagged_only`), most recently active first, at most `limit`.
    async fn reliabilities(
        &self,
        flagged_only: bool,
        limit: usize,
    ) -> Result<Vec<PlayerReliability>, StoreError>;
    /// Players banned now whose record changed at or after `since` (the
    /// replicas close their open sockets).
    async fn banned_since(&self, since: Millis) -> Result<Vec<PlayerId>, StoreError>;
    /// The reliabilities of these players (those without a record are left out).
    async fn reliabilities_of(
        &self,
        players: &[PlayerId],
    ) -> Result<Vec<(PlayerId, emofy_game::Reliability)>, StoreError>;
    /// The newest audit entries first, at most `limit`.
    async fn audit_log(&self, limit: usize) -> Result<Vec<AuditEntry>, StoreError>;
    /// Labels per UTC day since `since` (days without labels left out, oldest
    /// first) and retired images per consensus class.
    async fn dataset_stats(&self, since: Millis) -> Result<DatasetStats, StoreError>;
    /// What the periodic truth pass reads: the newest `max_labels` labels,
    /// the gold labels and model guesses of their images, the status and
    /// label count of those no longer open, and reliabilities.
    async fn truth_snapshot(&self, max_labels: usize) -> Result<TruthSnapshot, StoreError>;
    /// Writes a truth pass: each player's matrix (their counters are kept),
    /// the model's matrix, the posteriors of images still open, and each
    /// re-judged closed image's posterior and status while it is as read.
    async fn apply_truth_pass(&self, pass: TruthPass, at: Millis) -> Result<(), StoreError>;
}

/// Dataset statistics for the moderators' charts.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct DatasetStats {
    /// (UTC day as `YYYY-MM-DD`, labels that day), oldest first.
    pub labels_per_day: Vec<(String, u64)>,
    /// Retired images per consensus class, in class order.
    pub retired_per_class: [u64; emofy_game::EMOTION_COUNT],
}

/// Counts `(label time)`s per UTC day, oldest first.
pub fn per_day(times: impl IntoIterator<Item = Millis>) -> Vec<(String, u64)> {
    let mut days: std::collections::BTreeMap<String, u64> = std::collections::BTreeMap::new();
    for t in times {
        let b = emofy_game::Period::Daily.bucket(t);
        *days
            .entry(b.id.trim_start_matches('d').to_owned())
            .or_default() += 1;
    }
    days.into_iter().collect()
}

/// Input of the periodic full EM pass.
#[derive(Debug, Clone, Default)]
pub struct TruthSnapshot {
    pub labels: Vec<LabelRecord>,
    pub gold: Vec<(ImageId, Emotion)>,
    pub model_guesses: Vec<(ImageId, Emotion)>,
    /// The labels the images came with (demo, imported datasets).
    pub known: Vec<(ImageId, emofy_game::KnownLabel)>,
    pub reliabilities: Vec<(PlayerId, emofy_game::Reliability)>,
    /// What the last pass learned about the crowd.
    pub crowd: Option<emofy_game::CrowdPrior>,
    /// The images the labels are on that are no longer open: status, and
    /// how many labels they hold in all (votes), so the pass can tell which
    /// it saw in full.
    pub closed: Vec<(ImageId, ImageStatus, u32)>,
}

/// Output of the periodic full EM pass.
#[derive(Debug, Clone, Default)]
pub struct TruthPass {
    pub matrices: Vec<(PlayerId, emofy_game::truth::Confusion)>,
    pub model: Option<emofy_game::truth::Confusion>,
    /// Open images' posteriors (written only while they are still open).
    pub posteriors: Vec<(ImageId, [f64; emofy_game::EMOTION_COUNT])>,
    /// Closed images re-judged: written only while still as read.
    pub rejudged: Vec<Rejudge>,
    /// The class prior, pooled matrix and strength the answers until the
    /// next pass use.
    pub crowd: emofy_game::CrowdPrior,
}

/// A closed image the pass re-judged ([`emofy_game::truth::rejudged`]):
/// the store writes `posterior` and `now` only if the image is still `was`
/// (an answer or a moderator may have moved it since the snapshot).
#[derive(Debug, Clone, PartialEq)]
pub struct Rejudge {
    pub image: ImageId,
    pub was: ImageStatus,
    pub now: ImageStatus,
    pub posterior: [f64; emofy_game::EMOTION_COUNT],
}
