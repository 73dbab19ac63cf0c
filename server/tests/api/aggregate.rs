//! `emofy aggregate` on real crowds: the shared label sets with known truth
//! (`../shared/data/crowd/`, read in place; the test says so and passes
//! when the folder is absent, as on a machine without the shared data).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;

fn crowd_data() -> Option<PathBuf> {
    let dir = std::env::var_os("EMOFY_CROWD_DATA")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/data/crowd"));
    dir.is_dir().then_some(dir)
}

fn read_csv(path: &Path) -> Vec<Vec<String>> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .skip(1)
        .map(|l| l.split(',').map(str::to_owned).collect())
        .collect()
}

/// Runs `emofy aggregate ARGS`, which must succeed.
fn run_ok(args: &[&std::ffi::OsStr]) {
    let run = Command::new(env!("CARGO_BIN_EXE_emofy"))
        .arg("aggregate")
        .args(args)
        .output()
        .unwrap();
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
}

/// Runs `emofy aggregate`; returns task → label and the worker rows.
fn aggregate(
    labels: &Path,
    method: &str,
    dir: &Path,
) -> (HashMap<String, String>, Vec<Vec<String>>) {
    let out = dir.join(format!("tasks-{method}.csv"));
    let workers = dir.join(format!("workers-{method}.csv"));
    run_ok(&[
        labels.as_os_str(),
        "--method".as_ref(),
        method.as_ref(),
        "--out".as_ref(),
        out.as_os_str(),
        "--workers".as_ref(),
        workers.as_os_str(),
    ]);
    let tasks = read_csv(&out)
        .into_iter()
        .map(|r| (r[0].clone(), r[1].clone()))
        .collect();
    (tasks, read_csv(&workers))
}

fn accuracy(pred: &HashMap<String, String>, truth: &[Vec<String>]) -> f64 {
    let right = truth
        .iter()
        .filter(|t| pred.get(&t[0]) == Some(&t[1]))
        .count();
    right as f64 / truth.len() as f64
}

/// Accuracy floors of `em`, as measured (`docs/benchmarks.md`, "Truth
/// inference on real crowds"): crowd-kit 1.4.2's best method reaches 0.8889
/// (DawidSkene) on duck and 0.8426 (DawidSkene, 680 tasks) on dog; emofy
/// ties it on duck and gets 668 of 807 on dog (the strength chosen by
/// cross-validation is 16 there; with tasks and workers numbered in name
/// order the choice no longer depends on the rows' order).
const EM_FLOOR: [(&str, f64); 2] = [("duck", 96.0 / 108.0), ("dog", 668.0 / 807.0)];

/// The rows of `answers` in a shuffled order (a fixed permutation per seed).
fn shuffled(answers: &Path, seed: u64, out: &Path) {
    let text = std::fs::read_to_string(answers).unwrap();
    let mut lines: Vec<&str> = text.lines().collect();
    let header = lines.remove(0);
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    for i in (1..lines.len()).rev() {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        lines.swap(i, (x % (i as u64 + 1)) as usize);
    }
    std::fs::write(out, format!("{header}\n{}\n", lines.join("\n"))).unwrap();
}

#[test]
fn em_and_online_hold_on_real_crowds_in_any_order() {
    let Some(data) = crowd_data() else {
        eprintln!("no shared crowd data beside the checkout: skipped");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    for (name, floor) in EM_FLOOR {
        let answers = data.join(name).join("answer.csv");
        let truth = read_csv(&data.join(name).join("truth.csv"));
        let (em, workers) = aggregate(&answers, "em", dir.path());
        let (online, online_workers) = aggregate(&answers, "online", dir.path());
        let (mv, _) = aggregate(&answers, "mv", dir.path());
        let (em, online, mv) = (
            accuracy(&em, &truth),
            accuracy(&online, &truth),
            accuracy(&mv, &truth),
        );
        let mut orders = Vec::new();
        for seed in 1..=5 {
            let file = dir.path().join(format!("{name}-{seed}.csv"));
            shuffled(&answers, seed, &file);
            orders.push(accuracy(&aggregate(&file, "online", dir.path()).0, &truth));
        }
        let mean = orders.iter().sum::<f64>() / orders.len() as f64;
        eprintln!("{name}: em {em:.4}, online {online:.4}, shuffled {orders:?}, mv {mv:.4}");
        assert!(em >= floor, "{name}: em {em} below {floor}");
        assert!(em > mv, "{name}: em {em} no better than majority vote {mv}");
        assert!(
            (online - em).abs() <= 0.01,
            "{name}: online {online} vs em {em}"
        );
        assert!(
            (mean - online).abs() <= 0.01,
            "{name}: shuffled {mean} vs file order {online}"
        );
        // Real workers, none a bot: none is flagged, by the batch rules nor
        // by the game's own spam rules (the online replay's verdicts).
        for (method, rows) in [("em", &workers), ("online", &online_workers)] {
            let flagged: Vec<&Vec<String>> = rows.iter().filter(|w| !w[5].is_empty()).collect();
            assert!(
                flagged.is_empty(),
                "{name}: real workers flagged by {method}: {flagged:?}"
            );
        }
    }
}

#[test]
fn aggregate_names_the_bad_row_and_writes_jsonl() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.csv");
    std::fs::write(&bad, "task,worker,label\nt1,w1,yes\nt1,,no\n").unwrap();
    let run = Command::new(env!("CARGO_BIN_EXE_emofy"))
        .arg("aggregate")
        .arg(&bad)
        .arg("--out")
        .arg(dir.path().join("x.csv"))
        .output()
        .unwrap();
    assert!(!run.status.success());
    let err = String::from_utf8_lossy(&run.stderr);
    assert!(err.contains("row 3: empty worker"), "{err}");

    let good = dir.path().join("good.csv");
    std::fs::write(
        &good,
        "question,worker,answer\nq1,a,cat\nq1,b,cat\nq1,c,dog\nq2,a,dog\nq2,b,dog\nq3,c,dog\nq3,e,dog\n",
    )
    .unwrap();
    let gold = dir.path().join("gold.csv");
    std::fs::write(&gold, "question,truth\nq3,cat\nq9,cat\n").unwrap();
    let tasks = |method: &str| {
        let out = dir.path().join(format!("tasks-{method}.jsonl"));
        run_ok(&[
            good.as_os_str(),
            "--method".as_ref(),
            method.as_ref(),
            "--format".as_ref(),
            "jsonl".as_ref(),
            "--out".as_ref(),
            out.as_os_str(),
            "--gold".as_ref(),
            gold.as_os_str(),
        ]);
        std::fs::read_to_string(&out)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect::<Vec<serde_json::Value>>()
    };
    let rows = tasks("em");
    assert_eq!(rows.len(), 3);
    assert_eq!(rows[0]["task"], "q1");
    assert_eq!(rows[0]["label"], "cat");
    assert_eq!(rows[1]["label"], "dog");
    assert_eq!(rows[2]["label"], "cat", "gold decides q3");
    assert_eq!(rows[2]["confidence"], 1.0);
    // The game's step (seven labels: the gold says "dog" is often said of
    // cats, so q2's two "dog"s are weak evidence and not asserted here).
    let online = tasks("online");
    assert_eq!(online.len(), 3);
    assert_eq!(online[0]["label"], "cat");
    assert_eq!(online[2]["label"], "cat", "gold decides q3");
    assert_eq!(online[2]["confidence"], 1.0);
    let p = &rows[1]["posterior"];
    let sum = p["cat"].as_f64().unwrap() + p["dog"].as_f64().unwrap();
    assert!((sum - 1.0).abs() < 1e-9);
}
