//! `emofy import`, `emofy export`, `emofy import-dataset`, `emofy migrate`:
//! datasets in and out, and moving an embedded data dir into MongoDB.

use std::path::PathBuf;

use anyhow::bail;
use emofy_server::Config;
use emofy_server::app;
use emofy_server::dataset::import as importer;
use indicatif::{ProgressBar, ProgressStyle};

pub async fn import(
    config: Config,
    folder: Option<PathBuf>,
    fer_csv: Option<PathBuf>,
) -> anyhow::Result<()> {
    let stores = app::open_stores(&config).await?;
    let bar = ProgressBar::new(0);
    bar.set_style(
        ProgressStyle::with_template("{spinner} [{elapsed_precise}] {wide_bar} {pos}/{len} {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let progress = |done: u64, total: u64| {
        bar.set_length(total);
        bar.set_position(done);
    };
    let report = match (folder, fer_csv) {
        (Some(dir), _) => importer::import_folder(&dir, stores.images.as_ref(), progress).await?,
        (None, Some(csv)) => {
            importer::import_fer_csv(&csv, stores.images.as_ref(), progress).await?
        }
        (None, None) => bail!("give --folder or --fer-csv"),
    };
    bar.finish_and_clear();
    println!(
        "imported {} new image(s); {} already present; {} rejected",
        report.added,
        report.duplicates,
        report.rejected.len()
    );
    for (place, why) in report.rejected.iter().take(50) {
        println!("  rejected {place}: {why}");
    }
    if report.rejected.len() > 50 {
        println!("  … and {} more", report.rejected.len() - 50);
    }
    Ok(())
}

pub async fn export(config: Config, out: PathBuf) -> anyhow::Result<()> {
    let stores = app::open_stores(&config).await?;
    let total = stores.images.image_count().await?;
    let bar = ProgressBar::new(total);
    bar.set_style(
        ProgressStyle::with_template("{spinner} [{elapsed_precise}] {wide_bar} {pos}/{len} images")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let report = emofy_server::dataset::export::export(
        stores.images.as_ref(),
        stores.uploads.as_ref(),
        &out,
        |n| bar.inc(n),
    )
    .await?;
    bar.finish_and_clear();
    println!(
        "exported {} image(s) to {} ({} FER2013 CSV rows); {} upload(s) withheld without export consent",
        report.images,
        out.display(),
        report.csv_rows,
        report.withheld
    );
    Ok(())
}

/// Imports an `emofy export` directory (dataset.jsonl + images/).
pub async fn import_dataset(config: Config, from: PathBuf) -> anyhow::Result<()> {
    let stores = app::open_stores(&config).await?;
    let n = emofy_server::dataset::export::import_jsonl(stores.images.as_ref(), &from).await?;
    stores.rounds.flush().await?;
    println!(
        "imported {n} image(s) with their votes from {}",
        from.display()
    );
    Ok(())
}

/// Copies the embedded data dir into MongoDB (`storage.mongodb`).
pub async fn migrate(config: Config) -> anyhow::Result<()> {
    let Some(uri) = &config.storage.mongodb.uri else {
        bail!(
            "set EMOFY_STORAGE__MONGODB__URI (or storage.mongodb.uri in the config file) to the target"
        );
    };
    let mongo = emofy_server::store::mongo::MongoStore::connect_with(
        uri,
        app::mongo_options(&config.storage.mongodb),
    )
    .await?;
    let report = emofy_server::store::migrate::embedded_to_mongo(&config.data_dir, &mongo).await?;
    for (coll, n) in &report.counts {
        println!("{coll}: {n}");
    }
    println!(
        "copied {} into MongoDB database {}",
        config.data_dir.display(),
        config.storage.mongodb.database
    );
    Ok(())
}
