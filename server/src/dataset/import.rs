//! `emofy import`: loads real labelled images into the store.
//!
//! Two layouts: an image folder `<emotion>/<file>` (emotion names as in
//! [`Emotion`]) and the FER2013 CSV format (`emotion,pixels,Usage`, emotion as
//! the FER2013 index 0–6 in *its* order: angry, disgust, fear, happy, sad,
//! surprise, neutral). Every image is decoded, checked and re-encoded as PNG
//! (which drops any EXIF/GPS metadata); the dataset label is kept as the
//! image's `source_label`, never counted as a vote. Bad rows and files are
//! skipped and reported; nothing half-written is stored.

use std::io::{BufRead, Cursor};
use std::path::{Path, PathBuf};

use emofy_game::Emotion;
use image::{DynamicImage, GrayImage, ImageFormat};

use crate::store::{ImageSource, ImageStore, NewImage, StoreError};

/// Largest accepted file in bytes.
pub const MAX_FILE_BYTES: u64 = 10 * 1024 * 1024;
/// Largest accepted width or height in pixels.
pub const MAX_SIDE: u32 = 4096;

/// `(where, why)` for a skipped file or row.
pub type Rejection = (String, String);

/// What an import did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ImportReport {
    pub added: u64,
    pub duplicates: u64,
    /// Every skipped file or row.
    pub rejected: Vec<Rejection>,
}

/// Errors that stop an import as a whole.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error("cannot read {path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("{0}")]
    Format(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A decoded, validated image ready to store.
struct Prepared {
    png: Vec<u8>,
    width: u32,
    height: u32,
}

fn prepare(bytes: &[u8]) -> Result<Prepared, String> {
    let limits = emofy_inference::DecodeLimits {
        max_side: MAX_SIDE,
        ..emofy_inference::DecodeLimits::DEFAULT
    };
    let img = emofy_inference::decode(bytes, &limits).map_err(|e| match e {
        emofy_inference::InferenceError::BadInput(why) => why,
        other => other.to_string(),
    })?;
    let img = match img.color().has_color() {
        true => DynamicImage::ImageRgb8(img.to_rgb8()),
        false => DynamicImage::ImageLuma8(img.to_luma8()),
    };
    let mut png = Vec::new();
    img.write_to(&mut Cursor::new(&mut png), ImageFormat::Png)
        .map_err(|e| format!("cannot encode: {e}"))?;
    Ok(Prepared {
        png,
        width: img.width(),
        height: img.height(),
    })
}

async fn store(
    images: &dyn ImageStore,
    p: Prepared,
    label: Emotion,
    report: &mut ImportReport,
) -> Result<(), ImportError> {
    let (_, new) = images
        .insert_image(
            NewImage {
                bytes: p.png,
                mime: "image/png".into(),
                width: p.width,
                height: p.height,
                source: ImageSource::Import,
                source_label: Some(label),
                uploader: None,
            },
            crate::clock::now(),
        )
        .await?;
    if new {
        report.added += 1;
    } else {
        report.duplicates += 1;
    }
    Ok(())
}

/// What [`scan_folder`] found.
#[derive(Debug, Default)]
pub struct FolderScan {
    /// Files to import with their folder's emotion, in a stable order.
    pub files: Vec<(PathBuf, Emotion)>,
    pub rejected: Vec<Rejection>,
}

/// Files to import from a `<emotion>/<file>` folder, and rejections for unknown folders.
pub fn scan_folder(root: &Path) -> Result<FolderScan, ImportError> {
    let io = |path: &Path, source| ImportError::Io {
        path: path.display().to_string(),
        source,
    };
    let mut files = Vec::new();
    let mut rejected = Vec::new();
    let mut dirs: Vec<_> = std::fs::read_dir(root)
        .map_err(|e| io(root, e))?
        .filter_map(Result::ok)
        .collect();
    dirs.sort_by_key(|d| d.file_name());
    for dir in dirs {
        let path = dir.path();
        if !path.is_dir() {
            rejected.push((
                path.display().to_string(),
                "not inside an <emotion>/ folder".into(),
            ));
            continue;
        }
        let name = dir.file_name().to_string_lossy().to_string();
        let Ok(emotion) = name.parse::<Emotion>() else {
            rejected.push((
                path.display().to_string(),
                format!("{name:?} is not an emotion"),
            ));
            continue;
        };
        let mut entries: Vec<_> = std::fs::read_dir(&path)
            .map_err(|e| io(&path, e))?
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| p.is_file())
            .collect();
        entries.sort();
        files.extend(entries.into_iter().map(|p| (p, emotion)));
    }
    Ok(FolderScan { files, rejected })
}

/// Imports an `<emotion>/<file>` folder. `progress` is called after each file.
pub async fn import_folder(
    root: &Path,
    images: &dyn ImageStore,
    mut progress: impl FnMut(u64, u64),
) -> Result<ImportReport, ImportError> {
    let FolderScan { files, rejected } = scan_folder(root)?;
    let mut report = ImportReport {
        rejected,
        ..ImportReport::default()
    };
    let total = files.len() as u64;
    for (i, (path, emotion)) in files.into_iter().enumerate() {
        let where_ = path.display().to_string();
        let size = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
        if size > MAX_FILE_BYTES {
            report.rejected.push((
                where_,
                format!("{size} bytes is over the {MAX_FILE_BYTES}-byte limit"),
            ));
        } else {
            match std::fs::read(&path) {
                Ok(bytes) => match prepare(&bytes) {
                    Ok(p) => store(images, p, emotion, &mut report).await?,
                    Err(why) => report.rejected.push((where_, why)),
                },
                Err(e) => report.rejected.push((where_, e.to_string())),
            }
        }
        progress(i as u64 + 1, total);
    }
    Ok(report)
}

/// One FER2013 row turned into a 48×48 grayscale image, or why not.
pub fn parse_fer_row(
    fields: &[&str],
    emotion_col: usize,
    pixels_col: usize,
) -> Result<(Emotion, GrayImage), String> {
    let raw = fields
        .get(emotion_col)
        .ok_or("missing emotion column")?
        .trim();
    let idx: usize = raw
        .parse()
        .map_err(|_| format!("emotion {raw:?} is not a number"))?;
    let emotion =
        Emotion::from_fer2013_index(idx).ok_or_else(|| format!("emotion {idx} is outside 0–6"))?;
    let pixels = fields.get(pixels_col).ok_or("missing pixels column")?;
    let mut buf = Vec::with_capacity(48 * 48);
    for p in pixels.split_ascii_whitespace() {
        let v: u8 = p.parse().map_err(|_| format!("pixel {p:?} is not 0–255"))?;
        buf.push(v);
    }
    if buf.len() != 48 * 48 {
        return Err(format!("{} pixels; expected 2304 (48×48)", buf.len()));
    }
    let img = GrayImage::from_raw(48, 48, buf).ok_or("bad pixel buffer")?;
    Ok((emotion, img))
}

/// Imports a FER2013-format CSV. `progress` gets (bytes read, total bytes).
pub async fn import_fer_csv(
    path: &Path,
    images: &dyn ImageStore,
    mut progress: impl FnMut(u64, u64),
) -> Result<ImportReport, ImportError> {
    let io = |source| ImportError::Io {
        path: path.display().to_string(),
        source,
    };
    let total = std::fs::metadata(path).map_err(io)?.len();
    let file = std::fs::File::open(path).map_err(io)?;
    let mut lines = std::io::BufReader::new(file).lines();
    let header = lines
        .next()
        .ok_or_else(|| ImportError::Format("empty file".into()))?
        .map_err(io)?;
    let cols: Vec<String> = header
        .split(',')
        .map(|c| c.trim().to_ascii_lowercase())
        .collect();
    let find = |name: &str| cols.iter().position(|c| c == name);
    let (Some(emotion_col), Some(pixels_col)) = (find("emotion"), find("pixels")) else {
        return Err(ImportError::Format(format!(
            "header {header:?} needs `emotion` and `pixels` columns (FER2013 format)"
        )));
    };
    let mut report = ImportReport::default();
    let mut read = header.len() as u64 + 1;
    for (n, line) in lines.enumerate() {
        let line = line.map_err(io)?;
        read += line.len() as u64 + 1;
        let line_no = n + 2;
        if line.trim().is_empty() {
            continue;
        }
        let fields: Vec<&str> = line.split(',').collect();
        if fields.len() != cols.len() {
            report.rejected.push((
                format!("line {line_no}"),
                format!("{} fields; expected {}", fields.len(), cols.len()),
            ));
            continue;
        }
        match parse_fer_row(&fields, emotion_col, pixels_col) {
            Ok((emotion, img)) => {
                let mut png = Vec::new();
                DynamicImage::ImageLuma8(img)
                    .write_to(&mut Cursor::new(&mut png), ImageFormat::Png)
                    .map_err(|e| ImportError::Format(e.to_string()))?;
                store(
                    images,
                    Prepared {
                        png,
                        width: 48,
                        height: 48,
                    },
                    emotion,
                    &mut report,
                )
                .await?;
            }
            Err(why) => report.rejected.push((format!("line {line_no}"), why)),
        }
        progress(read.min(total), total);
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fer_rows_are_validated_and_mapped() {
        let px = vec!["7"; 2304].join(" ");
        let (e, img) =
            parse_fer_row(&["4", &px, "Training"], 0, 1).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(e, Emotion::Sad); // FER index 4 is sad, ours is 5
        assert_eq!(img.get_pixel(0, 0).0, [7]);
        assert!(parse_fer_row(&["7", &px], 0, 1).is_err());
        assert!(parse_fer_row(&["x", &px], 0, 1).is_err());
        assert!(parse_fer_row(&["1", "1 2 3"], 0, 1).is_err());
        let bad = vec!["300"; 2304].join(" ");
        assert!(parse_fer_row(&["1", &bad], 0, 1).is_err());
    }

    #[test]
    fn prepare_rejects_non_images_and_huge_dimensions() {
        assert!(prepare(b"hello").is_err());
        assert!(prepare(&[]).is_err());
        // A PNG header that claims 30000×30000.
        let img = GrayImage::new(1, 1);
        let mut png = Vec::new();
        DynamicImage::ImageLuma8(img)
            .write_to(&mut Cursor::new(&mut png), ImageFormat::Png)
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(prepare(&png).is_ok());
        let mut huge = png.clone();
        huge[16..20].copy_from_slice(&30000u32.to_be_bytes());
        huge[20..24].copy_from_slice(&30000u32.to_be_bytes());
        // Fix the IHDR checksum (CRC-32) so only the claimed size is wrong.
        let crc = crc32fast::hash(&huge[12..29]);
        huge[29..33].copy_from_slice(&crc.to_be_bytes());
        let why = prepare(&huge).err().unwrap_or_default();
        assert!(why.contains("30000"), "{why}");
    }
}
