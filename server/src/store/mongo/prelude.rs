//! What the store's parts share: the driver and the store's types
//! (each part adds the siblings it uses).

pub(super) use std::collections::HashMap;

pub(super) use async_trait::async_trait;
pub(super) use emofy_game::{
    Emotion, ImageId, ImageStatus, Millis, PlayerId, PlayerTally, PoolEntry, Reliability, Role,
    RoundId, VoteCounts,
};
pub(super) use emofy_inference::Prediction;
pub(super) use futures_util::TryStreamExt;
pub(super) use mongodb::ClientSession;
pub(super) use mongodb::bson::{Bson, Document, doc, spec::BinarySubtype};
pub(super) use tokio::sync::{mpsc, oneshot};

pub(super) use crate::store::{
    AccountRecord, AnswerOutcome, AnswerRecord, AuditEntry, Consent, ConsentEvent, DatasetStats,
    FaceRegion, GameRules, ImageAction, ImageMeta, ImageSource, ImageStore, LabelCursor,
    LabelRecord, ModeratedImage, NewImage, NewUpload, OfferRecord, PlayerAction, PlayerRecord,
    PlayerReliability, PlayerStore, ReviewCandidate, ReviewStore, RoundStore, ScoreChange,
    ScoreReason, Stats, StoreError, TruthPass, TruthSnapshot, UploadAccess, UploadCursor,
    UploadRecord, UploadStore, truth,
};
