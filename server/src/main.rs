//! The `emofy` command line.

use std::io::BufRead;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use clap::{Parser, Subcommand};
use emofy_game::{DisplayName, Emotion, PlayerId, Role};
use emofy_inference::Classifier;
use emofy_inference::face::{FaceDetector, face_crop};
use emofy_server::config::{Config, Overrides};
use emofy_server::dataset::import;
use emofy_server::store::AccountRecord;
use emofy_server::{Application, app, auth, telemetry};
use indicatif::{ProgressBar, ProgressStyle};

/// Emofy: a real-time game that turns many players' labels into a facial-emotion dataset.
///
/// With no command, `emofy` runs the server (`emofy serve`) on the embedded
/// store in ./data: no Redis or MongoDB needed.
#[derive(Debug, Parser)]
#[command(name = "emofy", version, propagate_version = true)]
struct Cli {
    /// TOML config file (layered: defaults, then this file, then EMOFY_* variables, then flags).
    #[arg(long, global = true, env = "EMOFY_CONFIG")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the game server.
    Serve {
        #[command(flatten)]
        overrides: Overrides,
    },
    /// Import labelled images: an `<emotion>/<file>` folder or a FER2013-format CSV.
    Import {
        /// Folder laid out as <emotion>/<file> (emotion names: angry, disgust, fear, happy, neutral, sad, surprise).
        #[arg(long, conflicts_with = "fer_csv", required_unless_present = "fer_csv")]
        folder: Option<PathBuf>,
        /// CSV with `emotion,pixels[,Usage]` columns, FER2013 class order.
        #[arg(long)]
        fer_csv: Option<PathBuf>,
        #[command(flatten)]
        overrides: Overrides,
    },
    /// Export the labelled dataset: dataset.jsonl (votes, soft labels,
    /// consensus), fer2013.csv (48×48) and an ImageFolder tree, split
    /// train/val/test by image hash. Uploads only with export consent.
    Export {
        /// Output directory (created).
        #[arg(long)]
        out: PathBuf,
        #[command(flatten)]
        overrides: Overrides,
    },
    /// Copy an embedded data dir into MongoDB (`storage.mongodb.uri`, e.g.
    /// EMOFY_STORAGE__MONGODB__URI, database `storage.mongodb.database`).
    /// Stop the server first; safe to run again.
    Migrate {
        /// Source: only `embedded` (the SQLite store in --data-dir).
        #[arg(long, value_parser = ["embedded"])]
        from: String,
        /// Target: only `mongodb`.
        #[arg(long, value_parser = ["mongodb"])]
        to: String,
        #[command(flatten)]
        overrides: Overrides,
    },
    /// Import an `emofy export` directory (dataset.jsonl + images/): images
    /// with their votes and status.
    ImportDataset {
        /// The export directory.
        #[arg(long)]
        from: PathBuf,
        #[command(flatten)]
        overrides: Overrides,
    },
    /// Find the face in each image and print the model's prediction as JSON
    /// (one document for one image, an array for several).
    Predict {
        /// Image files (PNG or JPEG).
        #[arg(required = true)]
        files: Vec<PathBuf>,
        #[command(flatten)]
        overrides: Overrides,
    },
    /// Administration.
    Admin {
        #[command(subcommand)]
        command: AdminCommand,
    },
}

#[derive(Debug, Subcommand)]
enum AdminCommand {
    /// Replay the store's whole score ledger into the Redis leaderboard
    /// (after Redis lost data, or a replica crashed during an outage).
    /// Changes already on the board are skipped by their keys.
    RebuildLeaderboard {
        #[command(flatten)]
        overrides: Overrides,
    },
    /// Run one full truth-inference (EM) pass now: re-learn every player's
    /// matrix and the open images' posteriors from the newest labels.
    TruthPass {
        #[command(flatten)]
        overrides: Overrides,
    },
    /// Create a moderator account. The password is read from the first line of standard input.
    CreateModerator {
        /// Login name: 3–32 characters, lowercase letters, digits, '.', '_' or '-'.
        #[arg(long)]
        username: String,
        /// Name shown to players (defaults to the username).
        #[arg(long)]
        display_name: Option<String>,
        /// Make the account an admin instead of a moderator.
        #[arg(long)]
        admin: bool,
        #[command(flatten)]
        overrides: Overrides,
    },
}

fn load_config(file: Option<&PathBuf>, overrides: &Overrides) -> anyhow::Result<Config> {
    Config::load(file.map(PathBuf::as_path), std::env::vars(), overrides)
        .context("loading configuration")
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let command = cli.command.unwrap_or(Command::Serve {
        overrides: Overrides::default(),
    });
    match command {
        Command::Serve { overrides } => {
            let config = load_config(cli.config.as_ref(), &overrides)?;
            telemetry::init(config.log_format, &config.log_filter).map_err(anyhow::Error::msg)?;
            actix_web::rt::System::new().block_on(serve(config))
        }
        Command::Import {
            folder,
            fer_csv,
            overrides,
        } => {
            let config = load_config(cli.config.as_ref(), &overrides)?;
            telemetry::init(config.log_format, "warn").map_err(anyhow::Error::msg)?;
            actix_web::rt::System::new().block_on(run_import(config, folder, fer_csv))
        }
        Command::Export { out, overrides } => {
            let config = load_config(cli.config.as_ref(), &overrides)?;
            telemetry::init(config.log_format, "warn").map_err(anyhow::Error::msg)?;
            actix_web::rt::System::new().block_on(run_export(config, out))
        }
        Command::Migrate { overrides, .. } => {
            let config = load_config(cli.config.as_ref(), &overrides)?;
            telemetry::init(config.log_format, "warn").map_err(anyhow::Error::msg)?;
            actix_web::rt::System::new().block_on(async move {
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
                let report =
                    emofy_server::store::migrate::embedded_to_mongo(&config.data_dir, &mongo)
                        .await?;
                for (coll, n) in &report.counts {
                    println!("{coll}: {n}");
                }
                println!(
                    "copied {} into MongoDB database {}",
                    config.data_dir.display(),
                    config.storage.mongodb.database
                );
                anyhow::Ok(())
            })
        }
        Command::ImportDataset { from, overrides } => {
            let config = load_config(cli.config.as_ref(), &overrides)?;
            telemetry::init(config.log_format, "warn").map_err(anyhow::Error::msg)?;
            actix_web::rt::System::new().block_on(async move {
                let stores = app::open_stores(&config).await?;
                let n = emofy_server::dataset::export::import_jsonl(stores.images.as_ref(), &from)
                    .await?;
                stores.rounds.flush().await?;
                println!(
                    "imported {n} image(s) with their votes from {}",
                    from.display()
                );
                anyhow::Ok(())
            })
        }
        Command::Predict { files, overrides } => {
            let config = load_config(cli.config.as_ref(), &overrides)?;
            telemetry::init(config.log_format, "warn").map_err(anyhow::Error::msg)?;
            predict(&config, &files)
        }
        Command::Admin {
            command: AdminCommand::RebuildLeaderboard { overrides },
        } => {
            let config = load_config(cli.config.as_ref(), &overrides)?;
            telemetry::init(config.log_format, "warn").map_err(anyhow::Error::msg)?;
            actix_web::rt::System::new().block_on(rebuild_leaderboard(config))
        }
        Command::Admin {
            command: AdminCommand::TruthPass { overrides },
        } => {
            let config = load_config(cli.config.as_ref(), &overrides)?;
            telemetry::init(config.log_format, "warn").map_err(anyhow::Error::msg)?;
            actix_web::rt::System::new().block_on(truth_pass(config))
        }
        Command::Admin {
            command:
                AdminCommand::CreateModerator {
                    username,
                    display_name,
                    admin,
                    overrides,
                },
        } => {
            let config = load_config(cli.config.as_ref(), &overrides)?;
            telemetry::init(config.log_format, "warn").map_err(anyhow::Error::msg)?;
            let role = if admin { Role::Admin } else { Role::Moderator };
            actix_web::rt::System::new().block_on(create_moderator(
                config,
                username,
                display_name,
                role,
            ))
        }
    }
}

async fn serve(config: Config) -> anyhow::Result<()> {
    let host = config.host.clone();
    let data = config.data_dir.display().to_string();
    let app = Application::build(config)
        .await
        .context("starting the server")?;
    let shown_host = if host == "0.0.0.0" {
        "localhost"
    } else {
        host.as_str()
    };
    println!(
        "Emofy is running at http://{shown_host}:{}/  (data: {data}; Ctrl-C to stop)",
        app.port()
    );
    app.run_until_stopped().await?;
    Ok(())
}

async fn run_import(
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
        (Some(dir), _) => import::import_folder(&dir, stores.images.as_ref(), progress).await?,
        (None, Some(csv)) => import::import_fer_csv(&csv, stores.images.as_ref(), progress).await?,
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

async fn run_export(config: Config, out: PathBuf) -> anyhow::Result<()> {
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

/// `emofy predict`: the configured model (`model.dir` or the bundled
/// mini-Xception, as the server loads it), the upload face threshold and the
/// `[imaging]` decode limits.
fn predict(config: &Config, files: &[PathBuf]) -> anyhow::Result<()> {
    let Some(model) = app::load_model(config)? else {
        bail!("the model is disabled in the configuration (model.enabled = false)");
    };
    let detector = FaceDetector::bundled(config.upload.min_face_score)?;
    let limits = config.imaging.limits();
    let mut failed = false;
    let mut out = Vec::with_capacity(files.len());
    for file in files {
        let name = file.display().to_string();
        let doc = match predict_file(file, model.as_ref(), &detector, &limits) {
            Ok(v) => v,
            Err(why) => {
                failed = true;
                serde_json::json!({"file": name, "error": why})
            }
        };
        out.push(doc);
    }
    let doc = if out.len() == 1 {
        out.remove(0)
    } else {
        serde_json::Value::Array(out)
    };
    println!("{}", serde_json::to_string_pretty(&doc)?);
    if failed {
        bail!("some files could not be read");
    }
    Ok(())
}

fn predict_file(
    path: &Path,
    model: &dyn Classifier,
    detector: &FaceDetector,
    limits: &emofy_inference::DecodeLimits,
) -> Result<serde_json::Value, String> {
    // A file larger than the decode budget cannot decode within it.
    let size = std::fs::metadata(path).map_err(|e| e.to_string())?.len();
    if size > limits.max_bytes {
        return Err(format!(
            "{size} bytes is over the {}-byte limit",
            limits.max_bytes
        ));
    }
    let bytes = std::fs::read(path).map_err(|e| e.to_string())?;
    let img = emofy_inference::decode(&bytes, limits).map_err(|e| e.to_string())?;
    let file = path.display().to_string();
    let Some(face) = detector.largest_face(&img.to_luma8()) else {
        return Ok(serde_json::json!({
            "file": file, "face": null, "emotion": null, "probabilities": null,
            "model": model.version(), "note": "no face found"
        }));
    };
    let crop = face_crop(&img, &face, model.input_side());
    let p = model.classify(&crop).map_err(|e| e.to_string())?;
    let probabilities: serde_json::Map<String, serde_json::Value> = Emotion::ALL
        .iter()
        .map(|e| {
            (
                e.as_str().to_owned(),
                serde_json::json!(p.probabilities[e.index()]),
            )
        })
        .collect();
    Ok(serde_json::json!({
        "file": file, "face": face, "emotion": p.top(), "probabilities": probabilities, "model": p.model
    }))
}

fn valid_username(u: &str) -> bool {
    (3..=32).contains(&u.len())
        && u.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "._-".contains(c))
}

async fn truth_pass(config: Config) -> anyhow::Result<()> {
    let stores = app::open_stores(&config).await?;
    let r = emofy_server::actors::truth::run_pass(
        stores.review.as_ref(),
        emofy_server::clock::Clock::new(),
        config.truth.pass_labels,
    )
    .await
    .context("running the truth pass")?;
    println!(
        "truth pass: {} labels, {} players' matrices and {} posteriors updated",
        r.labels, r.players, r.images
    );
    Ok(())
}

async fn rebuild_leaderboard(config: Config) -> anyhow::Result<()> {
    let Some(url) = &config.redis.url else {
        bail!(
            "redis.url is not set (EMOFY_REDIS__URL): the in-process board rebuilds itself at start"
        );
    };
    let stores = app::open_stores(&config).await?;
    let board = emofy_server::leaderboard::redis::RedisLeaderboard::connect(
        url,
        &config.redis.prefix,
        std::time::Duration::from_secs(config.leaderboard.grace_hours * 3600),
        std::time::Duration::from_millis(config.redis.timeout_ms),
    )?;
    let read = emofy_server::leaderboard::replay_ledger(
        stores.rounds.as_ref(),
        &board,
        emofy_game::Millis(0),
    )
    .await
    .context("replaying the score ledger")?;
    println!(
        "replayed {read} score changes into {url} (prefix {})",
        config.redis.prefix
    );
    Ok(())
}

async fn create_moderator(
    config: Config,
    username: String,
    display: Option<String>,
    role: Role,
) -> anyhow::Result<()> {
    if !valid_username(&username) {
        bail!("username must be 3–32 characters of a-z, 0-9, '.', '_' or '-'");
    }
    let name =
        DisplayName::parse(display.as_deref().unwrap_or(&username)).context("display name")?;
    eprintln!("Password for {username} (first line of standard input; at least 12 characters):");
    let mut password = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut password)
        .context("reading the password")?;
    let password = password.trim_end_matches(['\r', '\n']).to_owned();
    if password.chars().count() < 12 {
        bail!("the password must be at least 12 characters");
    }
    let hash = auth::hash_password(&password)?;
    let stores = app::open_stores(&config).await?;
    let player = PlayerId(uuid::Uuid::new_v4());
    stores
        .players
        .create_account(
            AccountRecord {
                username: username.clone(),
                player,
                password_hash: hash,
                role,
            },
            name.as_str(),
            emofy_server::clock::now(),
        )
        .await
        .with_context(|| format!("creating account {username:?} (does it exist already?)"))?;
    stores.rounds.flush().await?;
    println!(
        "created {} account {username} (player {player})",
        role.as_str()
    );
    Ok(())
}
