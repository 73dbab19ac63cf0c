//! `emofy aggregate`: truth inference on a label file from anywhere.

use std::fs::File;
use std::io::{BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};

use anyhow::Context;
use emofy_game::replay::ReplayRules;
use emofy_server::Config;
use emofy_server::dataset::aggregate::{self, Format, Method};
use indicatif::{ProgressBar, ProgressStyle};

/// What `emofy aggregate` was asked.
#[derive(Debug, clap::Args)]
pub struct Request {
    /// The label file.
    pub labels: PathBuf,
    /// `em` (batch Dawid–Skene), `online` (the rows in file order through
    /// the server's own per-answer step and truth pass) or `mv` (majority vote).
    #[arg(long, default_value = "em")]
    pub method: Method,
    /// Where the task table goes.
    #[arg(long)]
    pub out: PathBuf,
    /// Where the worker table goes (accuracy, labels, flag, confusion matrix).
    #[arg(long)]
    pub workers: Option<PathBuf>,
    /// Known labels: CSV with `task,label` (or `question,truth`) columns.
    #[arg(long)]
    pub gold: Option<PathBuf>,
    /// `csv` or `jsonl` (one JSON document per line).
    #[arg(long, default_value = "csv")]
    pub format: Format,
}

fn create(path: &Path) -> anyhow::Result<BufWriter<File>> {
    Ok(BufWriter::new(
        File::create(path).with_context(|| format!("creating {}", path.display()))?,
    ))
}

/// Reads the labels (with a progress bar on a terminal), fits them with the
/// configured priors (`[truth.crowd]`), writes the tables.
pub fn aggregate(config: &Config, r: Request) -> anyhow::Result<()> {
    let name = r.labels.display().to_string();
    let file = File::open(&r.labels).with_context(|| format!("opening {name}"))?;
    let size = file.metadata().map(|m| m.len()).unwrap_or(0);
    let bar = ProgressBar::new(size);
    bar.set_style(
        ProgressStyle::with_template("{msg} [{bar:30}] {bytes}/{total_bytes} ({eta})")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    bar.set_message("reading labels");
    let set = aggregate::read_labels(&name, BufReader::with_capacity(1 << 20, file), |b| {
        bar.set_position(b)
    })?;
    bar.finish_and_clear();
    let gold = match &r.gold {
        Some(path) => {
            let gname = path.display().to_string();
            let f = File::open(path).with_context(|| format!("opening {gname}"))?;
            let (gold, skipped) = aggregate::read_gold(&gname, BufReader::new(f), &set)?;
            if skipped > 0 {
                eprintln!("{gname}: {skipped} gold rows name tasks without labels (skipped)");
            }
            gold
        }
        None => Vec::new(),
    };
    let spinner = ProgressBar::new_spinner();
    spinner.set_message(format!(
        "fitting {} labels, {} tasks, {} workers, {} classes",
        set.labels.len(),
        set.tasks.len(),
        set.workers.len(),
        set.classes.len()
    ));
    spinner.enable_steady_tick(std::time::Duration::from_millis(200));
    let game = config.rules()?;
    let rules = ReplayRules::closed_workforce(
        game.consensus,
        game.spam,
        emofy_game::truth::PASS_ITERATIONS,
    );
    let outcome = aggregate::aggregate(&set, r.method, &gold, &config.truth.crowd, &rules)?;
    let fit = &outcome.fit;
    spinner.finish_and_clear();
    let mut out = create(&r.out)?;
    aggregate::write_tasks(&mut out, &set, fit, r.format)?;
    out.flush()?;
    if let Some(path) = &r.workers {
        let reports = aggregate::worker_reports(&set, &outcome, &config.truth.crowd_flags);
        let mut w = create(path)?;
        aggregate::write_workers(&mut w, &set, fit, &reports, r.format)?;
        w.flush()?;
    }
    eprintln!(
        "{}: {} labels, {} tasks, {} workers, {} classes; matrix prior strength {}, {} iterations",
        name,
        set.labels.len(),
        set.tasks.len(),
        set.workers.len(),
        set.classes.len(),
        fit.matrix_strength,
        fit.iterations
    );
    Ok(())
}
