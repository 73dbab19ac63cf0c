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
use emofy_game::sim::{CrowdSpec, fixed_overlap, majority, simulate};

#[derive(Debug, Parser)]
#[command(name = "emofy-simulate", about = "Simulated crowd with known truth")]
struct Args {
    #[arg(long)]
    out: PathBuf,
    /// A named crowd (`emofy_game::sim::CrowdSpec::scenario`): base, skewed,
    /// confused, prolific, k4, realistic. The flags below override it.
    #[arg(long, default_value = "base")]
    scenario: String,
    #[arg(long)]
    images: Option<usize>,
    #[arg(long)]
    players: Option<usize>,
    #[arg(long)]
    spammers: Option<f64>,
    #[arg(long)]
    copiers: Option<f64>,
    /// How often a copier answers the shown model guess.
    #[arg(long)]
    copy_p: Option<f64>,
    /// Images that are gold (verified; served as gold rounds, not scored).
    #[arg(long)]
    gold: Option<usize>,
    /// Share of rounds whose suggestion is a decoy.
    #[arg(long)]
    decoy_share: Option<f64>,
    #[arg(long, default_value_t = 7)]
    seed: u64,
    /// Instead of simulating: time this many truth updates (judge + learn) per
    /// label count 1, 3, 9 and print a table.
    #[arg(long)]
    bench_updates: Option<u32>,
}

/// The per-label cost of the answer path's truth step, `truth::answer_step`
/// (`reference` and `judge` over an image's labels with the model's guess,
/// then `Reliability::learn` on a copy of the player's record), as the plan
/// runs it; beside it, the same three calls made one by one (what the plan
/// did before the step was shared), in the same run.
fn bench_updates(n: u32) {
    use emofy_game::truth::{
        Answer, Evidence, ImageFacts, LabelFact, MODEL_PRIOR, answer_step, judge, reference,
    };
    use emofy_game::{
        ConsensusRule, CrowdPrior, Emotion, ImageStatus, Reliability, SpamRules, TrustRules,
    };
    println!("| step | labels on the image | updates | ns per update |");
    println!("| --- | ---: | ---: | ---: |");
    for shared in [true, false] {
        for k in [1usize, 3, 9] {
            let crowd: Vec<Reliability> = (0..k).map(|_| Reliability::default()).collect();
            let model = emofy_game::truth::Confusion::new(MODEL_PRIOR);
            let mut me = Reliability::default();
            let rule = ConsensusRule::default();
            let spam = SpamRules::default();
            let trust = TrustRules::default();
            let crowd_prior = CrowdPrior::default();
            let started = std::time::Instant::now();
            let mut sink = 0.0;
            for i in 0..n {
                let answer = Emotion::ALL[i as usize % 7];
                let ev: Vec<Evidence<'_>> = crowd
                    .iter()
                    .enumerate()
                    .map(|(j, r)| Evidence {
                        reliability: r,
                        answer: Emotion::ALL[j % 7],
                        shown: Some(Emotion::Happy),
                    })
                    .collect();
                let facts = ImageFacts {
                    status: ImageStatus::Open,
                    gold: None,
                    prior: crowd_prior.class_prior,
                    model: Some((&model, Emotion::Happy)),
                    known: false,
                };
                if shared {
                    let step = answer_step(
                        &rule,
                        &trust,
                        &spam,
                        &crowd_prior.class_prior,
                        &facts,
                        &ev,
                        &me,
                        &Answer {
                            answer,
                            shown: Some(Emotion::Happy),
                            decoy: i % 10 == 0,
                            response_ms: 2_000,
                        },
                    );
                    sink += step.judgement.posterior[0];
                    me = step.learned;
                } else {
                    let checked = reference(&trust, &facts, &ev);
                    let mut all = ev.clone();
                    all.push(Evidence {
                        reliability: &me,
                        answer,
                        shown: Some(Emotion::Happy),
                    });
                    let j = judge(&rule, &trust, &facts, &all);
                    let mut learned = me.clone();
                    learned.learn(
                        &LabelFact {
                            answer,
                            shown: Some(Emotion::Happy),
                            decoy: i % 10 == 0,
                            gold: None,
                            reference: checked,
                            response_ms: 2_000,
                        },
                        &j.posterior,
                        &spam,
                        &crowd_prior.class_prior,
                    );
                    sink += j.posterior[0];
                    me = learned;
                }
            }
            let ns = started.elapsed().as_nanos() as f64 / f64::from(n.max(1));
            let name = if shared {
                "answer_step"
            } else {
                "calls one by one"
            };
            println!("| {name} | {k} | {n} | {ns:.0} |");
            std::hint::black_box(sink);
        }
    }
}

fn main() -> anyhow::Result<()> {
    let a = Args::parse();
    if let Some(n) = a.bench_updates {
        bench_updates(n);
        return Ok(());
    }
    let Some(base) = CrowdSpec::scenario(&a.scenario) else {
        anyhow::bail!(
            "unknown scenario {:?}; known: {}",
            a.scenario,
            CrowdSpec::SCENARIOS.join(", ")
        );
    };
    let spec = CrowdSpec {
        images: a.images.unwrap_or(base.images),
        players: a.players.unwrap_or(base.players),
        spammers: a.spammers.unwrap_or(base.spammers),
        copiers: a.copiers.unwrap_or(base.copiers),
        copy_p: a.copy_p.unwrap_or(base.copy_p),
        decoy_share: a.decoy_share.unwrap_or(base.decoy_share),
        gold: a.gold.unwrap_or(base.gold),
        seed: a.seed,
        ..base
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
    // Gold images are not scored (the system knows their truth).
    for (i, t) in o.truths.iter().enumerate() {
        if !o.gold[i] {
            writeln!(truth, "t{i},{t}")?;
        }
    }
    truth.flush()?;
    let mut emofy = std::io::BufWriter::new(std::fs::File::create(a.out.join("emofy.csv"))?);
    writeln!(emofy, "task,consensus,retired")?;
    for (i, (c, r)) in o.consensus.iter().zip(&o.retired).enumerate() {
        if !o.gold[i] {
            writeln!(emofy, "t{i},{c},{r}")?;
        }
    }
    emofy.flush()?;
    let mv_acc = o.accuracy_of(&majority(&o));
    // The fixed-overlap baseline on the same crowd, for crowd-kit too.
    let fixed = fixed_overlap(&spec, 5);
    let mut f = std::io::BufWriter::new(std::fs::File::create(a.out.join("fixed5.csv"))?);
    writeln!(f, "worker,task,label,shown,decoy")?;
    for l in &fixed.labels {
        writeln!(
            f,
            "w{},t{},{},{},{}",
            l.player, l.image, l.answer, l.shown, l.decoy
        )?;
    }
    f.flush()?;
    println!(
        "{{\"emofy_accuracy\": {:.4}, \"majority_accuracy\": {:.4}, \"fixed5_majority_accuracy\": {:.4}, \"labels_per_image\": {:.3}, \"retired\": {}, \"images\": {}}}",
        o.accuracy(),
        mv_acc,
        fixed.accuracy(),
        o.labels_per_image(),
        o.retired.iter().filter(|r| **r).count(),
        o.truths.len()
    );
    Ok(())
}
