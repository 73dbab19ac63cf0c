//! `emofy export`: the labelled dataset, in three layouts, and its import.
//!
//! What is exported: every image that is not removed, except uploads whose
//! contributor did not consent to exports (`include_in_exports`). The split
//! is deterministic by content hash, the one training uses
//! (`emofy_game::training::split_of`): the first byte of the SHA-256 below
//! 205 is `train` (≈ 80%), below 230 `val` (≈ 10%), else `test`.
//!
//! - `dataset.jsonl`: one object per image: `id`, `split`, `source`,
//!   `source_label`, `status`, `consensus`, `verified` (a moderator's label),
//!   `votes` per emotion, `soft` (votes / labels, FER+ style), `posterior`
//!   (the truth posterior per emotion: votes weighted by each labeller's
//!   estimated reliability, spammers and banned players left out) and `labels`.
//! - `fer2013.csv`: `emotion,pixels,Usage` (FER2013 class order and
//!   48×48 grayscale pixels; Usage Training / PublicTest / PrivateTest).
//!   The emotion is the consensus, else the posterior's top class, else the
//!   plurality of votes, else the source's label; images with none are left
//!   out of this file.
//! - `images/<split>/<emotion>/<id>.png`: an ImageFolder tree (same label
//!   rule; unlabelled images under `unlabelled/`).
//!
//! [`import_jsonl`] reads `dataset.jsonl` plus the `images/` tree back into
//! a store with the same votes and status.

use std::io::{BufRead, Write};
use std::path::Path;

use emofy_game::{Emotion, ImageId, ImageStatus, Millis, VoteCounts};
use serde::{Deserialize, Serialize};

use crate::store::{ImageMeta, ImageSource, ImageStore, NewImage, StoreError, UploadStore};

/// Errors of an export or import.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error("{path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("{0}")]
    Format(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> ExportError + '_ {
    move |source| ExportError::Io {
        path: path.display().to_string(),
        source,
    }
}

/// One line of `dataset.jsonl`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DatasetRow {
    pub id: ImageId,
    pub split: String,
    pub source: ImageSource,
    pub source_label: Option<Emotion>,
    pub status: String,
    pub consensus: Option<Emotion>,
    /// The moderator-verified label, if any.
    #[serde(default)]
    pub verified: Option<Emotion>,
    pub votes: serde_json::Map<String, serde_json::Value>,
    pub soft: serde_json::Map<String, serde_json::Value>,
    /// The truth posterior per emotion (absent before any counted label).
    #[serde(default)]
    pub posterior: Option<serde_json::Map<String, serde_json::Value>>,
    pub labels: u32,
}

/// The label an image is filed under: consensus, else the posterior's top
/// class, else plurality, else the source's.
pub fn label_of(m: &ImageMeta) -> Option<Emotion> {
    if let ImageStatus::Retired { label } = m.status {
        return Some(label);
    }
    if let Some(p) = &m.posterior {
        return Some(emofy_game::truth::map(p).0);
    }
    let total = m.votes.total();
    if total > 0 {
        let (i, _) = m
            .votes
            .0
            .iter()
            .enumerate()
            .max_by_key(|(i, v)| (**v, std::cmp::Reverse(*i)))?;
        return Some(Emotion::ALL[i]);
    }
    m.source_label
}

fn row(m: &ImageMeta) -> DatasetRow {
    let total = m.votes.total();
    let votes = Emotion::ALL
        .iter()
        .map(|e| (e.as_str().to_owned(), m.votes.0[e.index()].into()))
        .collect();
    let soft = Emotion::ALL
        .iter()
        .map(|e| {
            let p = if total == 0 {
                0.0
            } else {
                f64::from(m.votes.0[e.index()]) / f64::from(total)
            };
            (e.as_str().to_owned(), p.into())
        })
        .collect();
    DatasetRow {
        id: m.id,
        split: emofy_game::training::split_of(m.id).as_str().into(),
        source: m.source,
        source_label: m.source_label,
        status: m.status.name().into(),
        consensus: match m.status {
            ImageStatus::Retired { label } => Some(label),
            _ => None,
        },
        verified: m.gold,
        votes,
        soft,
        posterior: m.posterior.map(|p| {
            Emotion::ALL
                .iter()
                .map(|e| (e.as_str().to_owned(), p[e.index()].into()))
                .collect()
        }),
        labels: total,
    }
}

/// What an export wrote.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ExportReport {
    pub images: u64,
    /// Uploads left out for lack of export consent.
    pub withheld: u64,
    pub csv_rows: u64,
}

/// Exports every exportable image into `out` (all three layouts). `progress`
/// is called with (images done, images seen).
pub async fn export(
    images: &dyn ImageStore,
    uploads: &dyn UploadStore,
    out: &Path,
    mut progress: impl FnMut(u64),
) -> Result<ExportReport, ExportError> {
    std::fs::create_dir_all(out).map_err(io(out))?;
    let jsonl_path = out.join("dataset.jsonl");
    let csv_path = out.join("fer2013.csv");
    let mut jsonl =
        std::io::BufWriter::new(std::fs::File::create(&jsonl_path).map_err(io(&jsonl_path))?);
    let mut csv = std::io::BufWriter::new(std::fs::File::create(&csv_path).map_err(io(&csv_path))?);
    writeln!(csv, "emotion,pixels,Usage").map_err(io(&csv_path))?;
    let mut report = ExportReport::default();
    let mut after = None;
    loop {
        let page = images.all_images(after, 500).await?;
        let Some(last) = page.last() else { break };
        after = Some(last.id);
        for m in &page {
            progress(1);
            if m.status == ImageStatus::Removed {
                continue;
            }
            if m.source == ImageSource::Upload && !uploads.export_allowed(m.id).await? {
                report.withheld += 1;
                continue;
            }
            let Some((bytes, _)) = images.image_bytes(m.id).await? else {
                continue;
            };
            let r = row(m);
            serde_json::to_writer(&mut jsonl, &r)
                .map_err(|e| ExportError::Format(e.to_string()))?;
            jsonl.write_all(b"\n").map_err(io(&jsonl_path))?;
            let label = label_of(m);
            let dir = out
                .join("images")
                .join(&r.split)
                .join(label.map_or("unlabelled", |e| e.as_str()));
            std::fs::create_dir_all(&dir).map_err(io(&dir))?;
            let file = dir.join(format!("{}.png", m.id));
            std::fs::write(&file, &bytes).map_err(io(&file))?;
            if let Some(label) = label {
                let img = image::load_from_memory(&bytes)
                    .map_err(|e| ExportError::Format(format!("{}: {e}", m.id)))?;
                let gray = image::imageops::resize(
                    &img.to_luma8(),
                    48,
                    48,
                    image::imageops::FilterType::Triangle,
                );
                let pixels: Vec<String> = gray.as_raw().iter().map(u8::to_string).collect();
                let usage = match r.split.as_str() {
                    "train" => "Training",
                    "val" => "PublicTest",
                    _ => "PrivateTest",
                };
                writeln!(
                    csv,
                    "{},{},{usage}",
                    label.fer2013_index(),
                    pixels.join(" ")
                )
                .map_err(io(&csv_path))?;
                report.csv_rows += 1;
            }
            report.images += 1;
        }
    }
    jsonl.flush().map_err(io(&jsonl_path))?;
    csv.flush().map_err(io(&csv_path))?;
    Ok(report)
}

/// Imports an export (`dataset.jsonl` and its `images/` tree) into a store:
/// each image with its votes and status. Returns how many were imported.
pub async fn import_jsonl(images: &dyn ImageStore, dir: &Path) -> Result<u64, ExportError> {
    let path = dir.join("dataset.jsonl");
    let file = std::fs::File::open(&path).map_err(io(&path))?;
    let mut n = 0;
    for (i, line) in std::io::BufReader::new(file).lines().enumerate() {
        let line = line.map_err(io(&path))?;
        if line.trim().is_empty() {
            continue;
        }
        let r: DatasetRow = serde_json::from_str(&line)
            .map_err(|e| ExportError::Format(format!("{}:{}: {e}", path.display(), i + 1)))?;
        let mut votes = VoteCounts::default();
        for e in Emotion::ALL {
            votes.0[e.index()] = r
                .votes
                .get(e.as_str())
                .and_then(|v| v.as_u64())
                .and_then(|v| u32::try_from(v).ok())
                .unwrap_or(0);
        }
        let status = match (r.status.as_str(), r.consensus) {
            ("retired", Some(label)) => ImageStatus::Retired { label },
            ("disputed", _) => ImageStatus::Disputed,
            ("open", _) => ImageStatus::Open,
            (other, _) => {
                return Err(ExportError::Format(format!(
                    "{}:{}: status {other:?}",
                    path.display(),
                    i + 1
                )));
            }
        };
        let label = label_of(&ImageMeta {
            id: r.id,
            mime: String::new(),
            width: 0,
            height: 0,
            source: r.source,
            source_label: r.source_label,
            uploader: None,
            votes,
            status,
            created: Millis(0),
            posterior: r.posterior.as_ref().and_then(|p| {
                let mut out = [0.0; emofy_game::EMOTION_COUNT];
                for e in Emotion::ALL {
                    out[e.index()] = p.get(e.as_str())?.as_f64()?;
                }
                Some(out)
            }),
            gold: r.verified,
        });
        let file = dir
            .join("images")
            .join(&r.split)
            .join(label.map_or("unlabelled", |e| e.as_str()))
            .join(format!("{}.png", r.id));
        let bytes = std::fs::read(&file).map_err(io(&file))?;
        let img = image::load_from_memory(&bytes)
            .map_err(|e| ExportError::Format(format!("{}: {e}", file.display())))?;
        let (id, _) = images
            .insert_image(
                NewImage {
                    bytes,
                    mime: "image/png".into(),
                    width: img.width(),
                    height: img.height(),
                    source: ImageSource::Import,
                    source_label: r.source_label,
                    uploader: None,
                },
                crate::clock::now(),
            )
            .await?;
        if id != r.id {
            return Err(ExportError::Format(format!(
                "{}: content does not match its id",
                file.display()
            )));
        }
        images
            .restore_tally(id, votes, status, crate::clock::now())
            .await?;
        n += 1;
    }
    Ok(n)
}
