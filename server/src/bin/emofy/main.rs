//! The `emofy` command line: one module per group of commands.
//!
//! | module | commands |
//! | --- | --- |
//! | [`serve`] | `serve` (the default) |
//! | [`dataset`] | `import`, `export`, `import-dataset`, `migrate` |
//! | [`predict`] | `predict` |
//! | [`admin`] | `admin rebuild-leaderboard`, `admin truth-pass`, `admin create-moderator` |
//! | [`aggregate`] | `aggregate` |
//! | [`train`] | `train`, `model evaluate`, `model list` |
//!
//! Every command loads the configuration the same way (defaults, the file,
//! `EMOFY_*`, its flags) and sets up logging once: the server logs at
//! `log_filter`, the one-shot commands at `warn`.

use std::path::PathBuf;

use clap::{Parser, Subcommand};
use emofy_game::Role;
use emofy_server::config::{Config, Overrides};
use emofy_server::telemetry;

mod admin;
mod aggregate;
mod dataset;
mod predict;
mod serve;
mod train;

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
    /// Infer the truth of a label file collected anywhere (Label Studio,
    /// Toloka, MTurk): CSV with `task,worker,label` (or
    /// `question,worker,answer`) columns, any labels (2–16 distinct values).
    /// Writes `task,label,confidence` and one posterior column per class.
    Aggregate {
        #[command(flatten)]
        request: aggregate::Request,
        #[command(flatten)]
        overrides: Overrides,
    },
    /// Retrain the model on the crowd's labels: fine-tune the serving model
    /// on the consented, labelled images, judge the candidate against it on
    /// the test split (the promotion gate) and write it, with its model
    /// card, under the models directory.
    Train {
        #[command(flatten)]
        request: train::TrainRequest,
        #[command(flatten)]
        overrides: Overrides,
    },
    /// Models: the registry (list, promote, roll back), and evaluating any
    /// model on labelled faces.
    Model {
        #[command(subcommand)]
        command: ModelCommand,
    },
    /// Administration.
    Admin {
        #[command(subcommand)]
        command: AdminCommand,
    },
}

#[derive(Debug, Subcommand)]
enum ModelCommand {
    /// The registry's model versions (newest first): state, parent, test
    /// accuracy against the parent's, the gate's decision, which one serves.
    List {
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        overrides: Overrides,
    },
    /// Make a version the champion: every replica serves it at its next poll.
    /// A candidate the gate refused, or a version rolled back, needs `--force`.
    Promote {
        /// The version to promote.
        #[arg(value_name = "VERSION")]
        model: String,
        #[arg(long)]
        force: bool,
        #[command(flatten)]
        overrides: Overrides,
    },
    /// Take the champion back: the version it replaced serves again.
    Rollback {
        #[command(flatten)]
        overrides: Overrides,
    },
    /// Accuracy, macro-F1, recall per class and the confusion matrix of a
    /// model on labelled faces (an `<emotion>/<file>` folder or a FER2013 CSV).
    Evaluate {
        /// A model directory, or a version under the models directory
        /// (default: the serving model).
        #[arg(long)]
        model: Option<String>,
        /// The labelled faces.
        #[arg(long)]
        dataset: PathBuf,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        overrides: Overrides,
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

impl Command {
    /// The command's configuration flags.
    fn overrides(&self) -> &Overrides {
        match self {
            Command::Serve { overrides }
            | Command::Import { overrides, .. }
            | Command::Export { overrides, .. }
            | Command::Migrate { overrides, .. }
            | Command::ImportDataset { overrides, .. }
            | Command::Predict { overrides, .. }
            | Command::Aggregate { overrides, .. }
            | Command::Train { overrides, .. }
            | Command::Model {
                command:
                    ModelCommand::Evaluate { overrides, .. }
                    | ModelCommand::List { overrides, .. }
                    | ModelCommand::Promote { overrides, .. }
                    | ModelCommand::Rollback { overrides },
            }
            | Command::Admin {
                command:
                    AdminCommand::RebuildLeaderboard { overrides }
                    | AdminCommand::TruthPass { overrides }
                    | AdminCommand::CreateModerator { overrides, .. },
            } => overrides,
        }
    }
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let command = cli.command.unwrap_or(Command::Serve {
        overrides: Overrides::default(),
    });
    let config = Config::load(cli.config.as_deref(), std::env::vars(), command.overrides())
        .map_err(|e| anyhow::anyhow!("loading configuration: {e}"))?;
    let filter = match command {
        Command::Serve { .. } => config.log_filter.clone(),
        _ => "warn".to_owned(),
    };
    telemetry::init(config.log_format, &filter).map_err(anyhow::Error::msg)?;
    let system = || actix_web::rt::System::new();
    match command {
        Command::Serve { .. } => system().block_on(serve::serve(config)),
        Command::Import {
            folder, fer_csv, ..
        } => system().block_on(dataset::import(config, folder, fer_csv)),
        Command::Export { out, .. } => system().block_on(dataset::export(config, out)),
        Command::Migrate { .. } => system().block_on(dataset::migrate(config)),
        Command::ImportDataset { from, .. } => {
            system().block_on(dataset::import_dataset(config, from))
        }
        Command::Predict { files, .. } => predict::predict(&config, &files),
        Command::Aggregate { request, .. } => aggregate::aggregate(&config, request),
        Command::Train { request, .. } => system().block_on(train::train(config, request)),
        Command::Model {
            command:
                ModelCommand::Evaluate {
                    model,
                    dataset,
                    json,
                    ..
                },
        } => system().block_on(train::evaluate_model(config, model, dataset, json)),
        Command::Model {
            command: ModelCommand::List { json, .. },
        } => system().block_on(train::list_models(config, json)),
        Command::Model {
            command: ModelCommand::Promote { model, force, .. },
        } => system().block_on(train::change_champion(config, Some((model, force)))),
        Command::Model {
            command: ModelCommand::Rollback { .. },
        } => system().block_on(train::change_champion(config, None)),
        Command::Admin { command } => match command {
            AdminCommand::RebuildLeaderboard { .. } => {
                system().block_on(admin::rebuild_leaderboard(config))
            }
            AdminCommand::TruthPass { .. } => system().block_on(admin::truth_pass(config)),
            AdminCommand::CreateModerator {
                username,
                display_name,
                admin,
                ..
            } => {
                let role = if admin { Role::Admin } else { Role::Moderator };
                system().block_on(admin::create_moderator(
                    config,
                    username,
                    display_name,
                    role,
                ))
            }
        },
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_command_line_is_well_formed() {
        use clap::CommandFactory;
        super::Cli::command().debug_assert();
    }
}
