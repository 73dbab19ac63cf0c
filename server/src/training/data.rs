//! The model's training data, read from the store: every image the
//! training rule ([`emofy_game::training::example_of`]) accepts — consent
//! first — as a 64×64 face with its target, split train/val/test by hash;
//! and labelled faces from elsewhere (an `<emotion>/<file>` folder or a
//! FER2013 CSV) to evaluate a model on.
//!
//! This module loads and converts; what trains is decided in `game-logic`.

use std::collections::BTreeMap;
use std::path::Path;

use emofy_game::training::{DataRules, Excluded, ImageFacts, Origin, Split, example_of, one_hot};
use emofy_game::{ImageId, ImageStatus};
use emofy_inference::train::{Example, SIDE};
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::store::{ImageSource, ImageStore, StoreError, UploadStore};

/// Why the training data could not be read.
#[derive(Debug, thiserror::Error)]
pub enum TrainingDataError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("{path}: {why}")]
    File { path: String, why: String },
}

/// What went into a training run: per split and class, the examples; what
/// was left out and why; and a hash of the labels (ids, targets, weights)
/// that names this exact data.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct DataSnapshot {
    /// `counts[split][emotion]`: examples by their target's top class.
    pub counts: BTreeMap<String, BTreeMap<String, u32>>,
    /// Images left out, by reason (`removed`, `no_consent`, `unlabelled`,
    /// `unsure`, `unreadable`).
    pub excluded: BTreeMap<String, u32>,
    /// SHA-256 over every example's id, split, target and weight, in id order.
    pub label_set_hash: String,
    /// The consent filter, in words.
    pub consent_filter: String,
    pub rules: DataRules,
}

/// One split's examples and, in the same order, their image ids.
#[derive(Debug, Clone, Default)]
pub struct SplitData {
    pub ids: Vec<ImageId>,
    pub examples: Vec<Example>,
}

impl SplitData {
    fn push(&mut self, id: ImageId, example: Example) {
        self.ids.push(id);
        self.examples.push(example);
    }

    pub fn len(&self) -> usize {
        self.examples.len()
    }

    pub fn is_empty(&self) -> bool {
        self.examples.is_empty()
    }
}

/// The examples of each split, with their image ids.
#[derive(Debug, Clone, Default)]
pub struct TrainingData {
    pub train: SplitData,
    pub val: SplitData,
    pub test: SplitData,
    pub snapshot: DataSnapshot,
}

fn excluded_key(e: Excluded) -> &'static str {
    match e {
        Excluded::Removed => "removed",
        Excluded::NoConsent => "no_consent",
        Excluded::Unlabelled => "unlabelled",
        Excluded::Unsure => "unsure",
    }
}

/// The training-rule facts of one stored image.
async fn facts_of(
    m: &crate::store::ImageMeta,
    uploads: &dyn UploadStore,
) -> Result<ImageFacts, StoreError> {
    let origin = match m.source {
        ImageSource::Demo => Origin::Demo,
        ImageSource::Import => Origin::Dataset,
        ImageSource::Upload => Origin::Upload {
            use_for_training: uploads.training_allowed(m.id).await?,
        },
    };
    Ok(ImageFacts {
        id: m.id,
        origin,
        removed: m.status == ImageStatus::Removed,
        verified: m.gold,
        posterior: m.posterior,
        known: m.source_label,
    })
}

/// How many images the training rule accepts now (what the background
/// trainer's trigger counts), reading metadata only, in pages of 500.
pub async fn count_trainable(
    images: &dyn ImageStore,
    uploads: &dyn UploadStore,
    rules: &DataRules,
) -> Result<u32, StoreError> {
    let mut n = 0u32;
    let mut after = None;
    loop {
        let page = images.all_images(after, 500).await?;
        let Some(last) = page.last() else { break };
        after = Some(last.id);
        for m in &page {
            if example_of(&facts_of(m, uploads).await?, rules).is_ok() {
                n = n.saturating_add(1);
            }
        }
    }
    Ok(n)
}

/// Reads every image the rule accepts, in pages of 500; `progress` is
/// called after each image.
pub async fn load(
    images: &dyn ImageStore,
    uploads: &dyn UploadStore,
    rules: &DataRules,
    mut progress: impl FnMut(u64),
) -> Result<TrainingData, TrainingDataError> {
    let limits = emofy_inference::DecodeLimits::DEFAULT;
    let mut data = TrainingData::default();
    let mut hash = Sha256::new();
    let mut counts: BTreeMap<String, BTreeMap<String, u32>> = BTreeMap::new();
    let mut after = None;
    loop {
        let page = images.all_images(after, 500).await?;
        let Some(last) = page.last() else { break };
        after = Some(last.id);
        for m in &page {
            progress(1);
            let facts = facts_of(m, uploads).await?;
            let target = match example_of(&facts, rules) {
                Ok(t) => t,
                Err(why) => {
                    *data
                        .snapshot
                        .excluded
                        .entry(excluded_key(why).into())
                        .or_default() += 1;
                    continue;
                }
            };
            // Consent was checked before the bytes are read.
            let pixels = match images.image_bytes(m.id).await? {
                Some((bytes, _)) => emofy_inference::grayscale_input(&bytes, SIDE as u32, &limits),
                None => Err(emofy_inference::InferenceError::BadInput("no bytes".into())),
            };
            let Ok(pixels) = pixels else {
                *data
                    .snapshot
                    .excluded
                    .entry("unreadable".into())
                    .or_default() += 1;
                continue;
            };
            hash.update(m.id.as_bytes());
            hash.update(target.split.as_str().as_bytes());
            for p in target.probabilities {
                hash.update(p.to_le_bytes());
            }
            hash.update(target.weight.to_le_bytes());
            *counts
                .entry(target.split.as_str().into())
                .or_default()
                .entry(target.label().as_str().into())
                .or_default() += 1;
            let example = Example {
                pixels,
                target: target.probabilities,
                weight: target.weight,
            };
            match target.split {
                Split::Train => data.train.push(m.id, example),
                Split::Val => data.val.push(m.id, example),
                Split::Test => data.test.push(m.id, example),
            }
        }
    }
    data.snapshot.counts = counts;
    data.snapshot.label_set_hash = hex::encode(hash.finalize());
    data.snapshot.consent_filter = "demo and imported images; uploads only with use_for_training, \
                                    not deleted; removed images never"
        .into();
    data.snapshot.rules = *rules;
    Ok(data)
}

/// The longest line a labelled CSV may have: a FER2013 row is about 9 KiB.
pub const MAX_LINE_BYTES: usize = 64 << 10;

/// Labelled faces from outside the store, to evaluate on: an
/// `<emotion>/<file>` folder (each image read within the decode limits and
/// made 64×64 grayscale, as stored images are) or a FER2013 CSV
/// (`emotion,pixels[,Usage]`, read line by line, each line at most
/// [`MAX_LINE_BYTES`]). At most `max_faces` entries are read (more is an
/// error, not a truncation). Unreadable entries are skipped and counted.
pub fn read_labelled(
    path: &Path,
    max_faces: usize,
) -> Result<(Vec<Example>, usize), TrainingDataError> {
    use std::io::{BufRead, Read};
    let file_err = |why: String| TrainingDataError::File {
        path: path.display().to_string(),
        why,
    };
    let too_many = || {
        file_err(format!(
            "more than {max_faces} faces (training.max_labelled_faces)"
        ))
    };
    let limits = emofy_inference::DecodeLimits::DEFAULT;
    let mut out = Vec::new();
    let mut skipped = 0;
    if path.is_dir() {
        let scan =
            crate::dataset::import::scan_folder(path).map_err(|e| file_err(e.to_string()))?;
        if scan.files.len() > max_faces {
            return Err(too_many());
        }
        skipped += scan.rejected.len();
        for (file, emotion) in scan.files {
            let too_big = std::fs::metadata(&file)
                .map(|m| !m.is_file() || m.len() > limits.max_bytes)
                .unwrap_or(true);
            let pixels = if too_big {
                None
            } else {
                std::fs::read(&file)
                    .ok()
                    .and_then(|b| emofy_inference::grayscale_input(&b, SIDE as u32, &limits).ok())
            };
            match pixels {
                Some(pixels) => out.push(Example {
                    pixels,
                    target: one_hot(emotion),
                    weight: 1.0,
                }),
                None => skipped += 1,
            }
        }
        return Ok((out, skipped));
    }
    let file = std::fs::File::open(path).map_err(|e| file_err(e.to_string()))?;
    let mut reader = std::io::BufReader::new(file);
    let mut line = Vec::new();
    // One line, at most MAX_LINE_BYTES (never more is held in memory).
    let mut next_line = |line: &mut Vec<u8>, row: usize| -> Result<bool, TrainingDataError> {
        line.clear();
        let n = (&mut reader)
            .take(MAX_LINE_BYTES as u64 + 1)
            .read_until(b'\n', line)
            .map_err(|e| file_err(e.to_string()))?;
        if line.len() > MAX_LINE_BYTES {
            return Err(file_err(format!(
                "row {row}: longer than {MAX_LINE_BYTES} bytes"
            )));
        }
        while line.last().is_some_and(|b| *b == b'\n' || *b == b'\r') {
            line.pop();
        }
        Ok(n > 0)
    };
    if !next_line(&mut line, 0)? {
        return Err(file_err("empty file".into()));
    }
    let header_text = String::from_utf8_lossy(&line).into_owned();
    let header: Vec<&str> = header_text.split(',').map(str::trim).collect();
    let col = |name: &str| header.iter().position(|h| *h == name);
    let (Some(e_col), Some(p_col)) = (col("emotion"), col("pixels")) else {
        return Err(file_err("expected emotion and pixels columns".into()));
    };
    let mut row = 0;
    while next_line(&mut line, row + 1)? {
        row += 1;
        if line.is_empty() {
            continue;
        }
        if out.len() + skipped >= max_faces {
            return Err(too_many());
        }
        let text = String::from_utf8_lossy(&line);
        let fields: Vec<&str> = text.split(',').collect();
        match crate::dataset::import::parse_fer_row(&fields, e_col, p_col) {
            Ok((emotion, img)) => {
                let img = image::imageops::resize(
                    &img,
                    SIDE as u32,
                    SIDE as u32,
                    image::imageops::FilterType::Triangle,
                );
                out.push(Example {
                    pixels: img.into_raw(),
                    target: one_hot(emotion),
                    weight: 1.0,
                });
            }
            Err(_) => skipped += 1,
        }
    }
    Ok((out, skipped))
}
