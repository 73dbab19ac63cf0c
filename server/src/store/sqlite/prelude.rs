//! What the store's parts share: std, the driver and the store's types
//! (each part adds the siblings it uses).

pub(super) use std::collections::HashMap;
pub(super) use std::path::{Path, PathBuf};
pub(super) use std::sync::Arc;
pub(super) use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

pub(super) use async_trait::async_trait;
pub(super) use emofy_game::{
    Emotion, ImageId, ImageStatus, Millis, PlayerId, PlayerTally, PoolEntry, Reliability, Role,
    RoundId, VoteCounts,
};
pub(super) use emofy_inference::Prediction;
pub(super) use rusqlite::{Connection, OptionalExtension, params};
pub(super) use tokio::sync::mpsc;

pub(super) use crate::store::{
    AccountRecord, AnswerOutcome, AnswerRecord, AuditEntry, Consent, ConsentEvent, DatasetStats,
    FaceRegion, GameRules, ImageAction, ImageMeta, ImageSource, ImageStore, LabelCursor,
    LabelRecord, ModeratedImage, NewImage, NewUpload, OfferRecord, PlayerAction, PlayerRecord,
    PlayerReliability, PlayerStore, ReviewCandidate, ReviewStore, RoundStore, ScoreChange,
    ScoreReason, Stats, StoreError, TruthPass, TruthSnapshot, UploadAccess, UploadCursor,
    UploadRecord, UploadStore, truth,
};
