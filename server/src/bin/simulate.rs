//! `emofy-simulate`: a crowd with known truth played through Emofy's truth
//! inference and routing (`emofy_game::sim`), written as CSV for the
//! crowd-kit comparison (`tools/crowdkit_compare.py`).
//!
//! Writes `<out>/labels.csv` (`worker,task,label,shown,decoy`), `<out>/truth.csv`
//! (`task,truth`) and `<out>/emofy.csv` (`task,consensus,retired`), and
//! prints Emofy's and majority vote's accuracy and labels per image.
//!
//! ```text
//! cargo run --release --bin emofy-simulate -- --out /tmp/sim --copy-p 0.7
//! ```

use std::io::Write;
use std::path::PathBuf;

use clap::Parser;
use emofy_game::sim::{CrowdSpec, majority, simulate};

#[derive(Debug, Parser)]
#[command(name = "emofy-simulate", about = "Simulated crowd with known truth")]
struct Args {
    #[arg(long)]
    out: PathBuf,
    #[arg(long, default_value_t = 500)]
    images: usize,
    #[arg(long, default_value_t = 60)]
    players: usize,
    #[arg(long, default_value_t = 0.2)]
    spammers: f64,
    #[arg(long, default_value_t = 0.2)]
    copiers: f64,
    /// How often a copier answers the shown model guess.
    #[arg(long, default_value_t = 0.7)]
    copy_p: f64,
    /// Share of rounds whose suggestion is a decoy.
    #[arg(long, default_value_t = 0.1)]
    decoy_share: f64,
    #[arg(long, default_value_t = 7)]
    seed: u64,
}

fn main() -> anyhow::Result<()> {
    let a = Args::parse();
    let spec = CrowdSpec {
        images: a.images,
        players: a.players,
        spammers: a.spammers,
        copiers: a.copiers,
        copy_p: a.copy_p,
        decoy_share: a.decoy_share,
        seed: a.seed,
        ..CrowdSpec::default()
    };
    let o = simulate(&spec);
    std::fs::create_dir_all(&a.out)?;
    let mut labels = std::io::BufWriter::new(std::fs::File::create(a.out.join("labels.csv"))?);
    writeln!(labels, "worker,task,label,shown,decoy")?;
    for l in &o.labels {
        writeln!(
            labels,
            "w{},t{},{},{},{}",
            l.player, l.image, l.answer, l.shown, l.decoy
        )?;
    }
    labels.flush()?;
    let mut truth = std::io::BufWriter::new(std::fs::File::create(a.out.join("truth.csv"))?);
    writeln!(truth, "task,truth")?;
    for (i, t) in o.truths.iter().enumerate() {
        writeln!(truth, "t{i},{t}")?;
    }
    truth.flush()?;
    let mut emofy = std::io::BufWriter::new(std::fs::File::create(a.out.join("emofy.csv"))?);
    writeln!(emofy, "task,consensus,retired")?;
    for (i, (c, r)) in o.consensus.iter().zip(&o.retired).enumerate() {
        writeln!(emofy, "t{i},{c},{r}")?;
    }
    emofy.flush()?;
    let mv = majority(&o);
    let mv_acc = mv.iter().zip(&o.truths).filter(|(x, y)| x == y).count() as f64
        / o.truths.len().max(1) as f64;
    println!(
        "{{\"emofy_accuracy\": {:.4}, \"majority_accuracy\": {:.4}, \"labels_per_image\": {:.3}, \"retired\": {}, \"images\": {}}}",
        o.accuracy(),
        mv_acc,
        o.labels_per_image(),
        o.retired.iter().filter(|r| **r).count(),
        o.truths.len()
    );
    Ok(())
}
