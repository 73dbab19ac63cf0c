//! `emofy aggregate`: truth inference on label sets collected anywhere
//! (Label Studio, Toloka, MTurk exports): batch EM and majority vote with
//! the K-class core ([`emofy_game::crowd`]), and `online`, a replay
//! through the game's own per-answer step and truth pass
//! ([`emofy_game::replay`]). Tasks and workers are numbered in name order
//! (the output lists tasks so), so only `online` depends on the rows' order.
//!
//! Input: CSV with a header naming the task, worker and label columns —
//! crowd-kit's `task,worker,label`, or `question,worker,answer` — in any
//! order, other columns ignored. Labels are any strings (numbers included);
//! the class set is the distinct labels (2 to 16), ordered numerically when
//! every label is a number, else by text. Gold: `task,label` (or
//! `question,truth`). The file is read as a stream: memory is the interned
//! ids plus 12 bytes per label, whatever the file's text.

use std::collections::HashMap;
use std::io::{Read, Write};

use emofy_game::crowd::{
    self, CrowdError, Fit, FlagRules, Label, MAX_CLASSES, Matrix, Priors, WorkerFlag, WorkerReport,
};
use emofy_game::replay::{Replay, ReplayFit, ReplayRules};
use serde::Serialize;

/// How to infer the truth.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    /// Batch Dawid–Skene EM.
    Em,
    /// The rows in file order, one at a time, through the game's own
    /// per-answer step and truth pass ([`emofy_game::replay`]).
    Online,
    /// Majority vote.
    Mv,
}

impl std::str::FromStr for Method {
    type Err = String;

    fn from_str(s: &str) -> Result<Method, String> {
        match s {
            "em" => Ok(Method::Em),
            "online" => Ok(Method::Online),
            "mv" => Ok(Method::Mv),
            other => Err(format!("unknown method {other:?}: em, online or mv")),
        }
    }
}

/// Output format of the task and worker tables.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Csv,
    Jsonl,
}

impl std::str::FromStr for Format {
    type Err = String;

    fn from_str(s: &str) -> Result<Format, String> {
        match s {
            "csv" => Ok(Format::Csv),
            "jsonl" => Ok(Format::Jsonl),
            other => Err(format!("unknown format {other:?}: csv or jsonl")),
        }
    }
}

/// Why a label file cannot be aggregated; rows are numbered as in the file
/// (the header is row 1). A read failure is reported at the row it hit.
#[derive(Debug, thiserror::Error)]
pub enum AggregateError {
    #[error("{file}: row {row}: {why}")]
    Row { file: String, row: u64, why: String },
    #[error("{file}: the header has no {wanted} column (found: {found})")]
    Header {
        file: String,
        wanted: &'static str,
        found: String,
    },
    #[error("{0}")]
    Crowd(#[from] CrowdError),
}

/// A label set with its names.
#[derive(Debug, Clone, Default)]
pub struct LabelSet {
    pub tasks: Vec<String>,
    pub workers: Vec<String>,
    /// Class names, in class-index order.
    pub classes: Vec<String>,
    pub labels: Vec<Label>,
}

fn csv_error(file: &str, e: &csv::Error) -> AggregateError {
    let row = e.position().map_or(0, |p| p.line());
    AggregateError::Row {
        file: file.to_owned(),
        row,
        why: e.to_string(),
    }
}

/// Accepted names of the task column (crowd-kit, the truth-inference
/// benchmarks, Label Studio's item, MTurk's HIT).
const TASK_NAMES: &[&str] = &["task", "question", "item", "hitid"];
/// …and of the worker column.
const WORKER_NAMES: &[&str] = &["worker", "annotator", "performer", "workerid"];

/// The columns a header names, by their accepted names.
fn column(
    file: &str,
    header: &csv::StringRecord,
    names: &[&str],
    wanted: &'static str,
) -> Result<usize, AggregateError> {
    header
        .iter()
        .position(|h| names.iter().any(|n| h.trim().eq_ignore_ascii_case(n)))
        .ok_or_else(|| AggregateError::Header {
            file: file.to_owned(),
            wanted,
            found: header.iter().collect::<Vec<_>>().join(","),
        })
}

fn intern(map: &mut HashMap<String, u32>, names: &mut Vec<String>, name: &str) -> u32 {
    if let Some(i) = map.get(name) {
        return *i;
    }
    let i = names.len() as u32;
    names.push(name.to_owned());
    map.insert(name.to_owned(), i);
    i
}

/// Reads labels from CSV. `progress` is told the bytes read so far, now and then.
pub fn read_labels(
    file: &str,
    input: impl Read,
    mut progress: impl FnMut(u64),
) -> Result<LabelSet, AggregateError> {
    let mut rdr = csv::ReaderBuilder::new()
        .flexible(false)
        .trim(csv::Trim::All)
        .from_reader(input);
    let header = rdr.headers().map_err(|e| csv_error(file, &e))?.clone();
    let task_col = column(file, &header, TASK_NAMES, "task (or question)")?;
    let worker_col = column(file, &header, WORKER_NAMES, "worker")?;
    let label_col = column(file, &header, &["label", "answer"], "label (or answer)")?;
    let mut set = LabelSet::default();
    let (mut tasks, mut workers, mut classes) = (HashMap::new(), HashMap::new(), HashMap::new());
    let mut record = csv::StringRecord::new();
    let mut rows = 0u64;
    while rdr
        .read_record(&mut record)
        .map_err(|e| csv_error(file, &e))?
    {
        rows += 1;
        let row = record.position().map_or(rows + 1, |p| p.line());
        let field = |col: usize, what: &str| -> Result<&str, AggregateError> {
            match record.get(col) {
                Some(v) if !v.is_empty() => Ok(v),
                _ => Err(AggregateError::Row {
                    file: file.to_owned(),
                    row,
                    why: format!("empty {what}"),
                }),
            }
        };
        let (t, w, l) = (
            field(task_col, "task")?,
            field(worker_col, "worker")?,
            field(label_col, "label")?,
        );
        let class = intern(&mut classes, &mut set.classes, l);
        if set.classes.len() > MAX_CLASSES {
            return Err(AggregateError::Row {
                file: file.to_owned(),
                row,
                why: format!(
                    "label {l:?} is class number {}: at most {MAX_CLASSES} classes",
                    set.classes.len()
                ),
            });
        }
        set.labels.push(Label {
            task: intern(&mut tasks, &mut set.tasks, t),
            worker: intern(&mut workers, &mut set.workers, w),
            class: class as u8,
        });
        if rows.is_multiple_of(65_536) {
            progress(record.position().map_or(0, |p| p.byte()));
        }
    }
    if set.classes.len() < 2 {
        return Err(CrowdError::Classes(set.classes.len()).into());
    }
    order_classes(&mut set);
    order_ids(&mut set);
    Ok(set)
}

/// Tasks and workers numbered in name order, so that nothing but the
/// labels' own order depends on the order of the rows (the strength's
/// cross-validation folds hash these numbers).
fn order_ids(set: &mut LabelSet) {
    fn sorted(names: &mut Vec<String>) -> Vec<u32> {
        let mut order: Vec<usize> = (0..names.len()).collect();
        order.sort_by(|a, b| names[*a].cmp(&names[*b]));
        let mut new_index = vec![0u32; order.len()];
        for (new, old) in order.iter().enumerate() {
            new_index[*old] = u32::try_from(new).unwrap_or(u32::MAX);
        }
        let mut taken: Vec<String> = std::mem::take(names);
        *names = order
            .iter()
            .map(|i| std::mem::take(&mut taken[*i]))
            .collect();
        new_index
    }
    let tasks = sorted(&mut set.tasks);
    let workers = sorted(&mut set.workers);
    for l in &mut set.labels {
        l.task = tasks[l.task as usize];
        l.worker = workers[l.worker as usize];
    }
}

/// Numeric order when every class name is a number, else text order.
fn order_classes(set: &mut LabelSet) {
    let numbers: Option<Vec<f64>> = set.classes.iter().map(|c| c.parse::<f64>().ok()).collect();
    let mut order: Vec<usize> = (0..set.classes.len()).collect();
    match numbers {
        Some(n) => order.sort_by(|a, b| n[*a].total_cmp(&n[*b])),
        None => order.sort_by(|a, b| set.classes[*a].cmp(&set.classes[*b])),
    }
    let mut new_index = vec![0u8; order.len()];
    for (new, old) in order.iter().enumerate() {
        new_index[*old] = new as u8;
    }
    set.classes = order.iter().map(|i| set.classes[*i].clone()).collect();
    for l in &mut set.labels {
        l.class = new_index[usize::from(l.class)];
    }
}

/// Reads gold labels (`task,label` or `question,truth`) for the tasks of
/// `set`; gold for tasks without labels is skipped (counted in the reply).
pub fn read_gold(
    file: &str,
    input: impl Read,
    set: &LabelSet,
) -> Result<(Vec<(u32, u8)>, usize), AggregateError> {
    let mut rdr = csv::ReaderBuilder::new()
        .trim(csv::Trim::All)
        .from_reader(input);
    let header = rdr.headers().map_err(|e| csv_error(file, &e))?.clone();
    let task_col = column(file, &header, TASK_NAMES, "task (or question)")?;
    let label_col = column(
        file,
        &header,
        &["label", "truth", "answer"],
        "label (or truth)",
    )?;
    let tasks: HashMap<&str, u32> = set
        .tasks
        .iter()
        .enumerate()
        .map(|(i, t)| (t.as_str(), i as u32))
        .collect();
    let classes: HashMap<&str, u8> = set
        .classes
        .iter()
        .enumerate()
        .map(|(i, c)| (c.as_str(), i as u8))
        .collect();
    let (mut gold, mut skipped) = (Vec::new(), 0);
    let mut record = csv::StringRecord::new();
    let mut rows = 1u64;
    while rdr
        .read_record(&mut record)
        .map_err(|e| csv_error(file, &e))?
    {
        rows += 1;
        let row = record.position().map_or(rows, |p| p.line());
        let (Some(t), Some(l)) = (record.get(task_col), record.get(label_col)) else {
            return Err(AggregateError::Row {
                file: file.to_owned(),
                row,
                why: "missing field".into(),
            });
        };
        let Some(class) = classes.get(l) else {
            return Err(AggregateError::Row {
                file: file.to_owned(),
                row,
                why: format!("gold label {l:?} is not among the labels' classes"),
            });
        };
        match tasks.get(t) {
            Some(task) => gold.push((*task, *class)),
            None => skipped += 1,
        }
    }
    Ok((gold, skipped))
}

/// What a method concluded: the fit, and for `online` the game's own
/// spam verdicts per worker (which replace the batch flags in the report).
#[derive(Debug, Clone, PartialEq)]
pub struct Outcome {
    pub fit: Fit,
    pub flags: Option<Vec<Option<WorkerFlag>>>,
}

/// Runs the chosen method over a label set: `priors` for `em` and `mv`,
/// `rules` (the server's truth rules) for `online`.
pub fn aggregate(
    set: &LabelSet,
    method: Method,
    gold: &[(u32, u8)],
    priors: &Priors,
    rules: &ReplayRules,
) -> Result<Outcome, AggregateError> {
    let k = set.classes.len();
    let fit = match method {
        Method::Em => crowd::em(
            k,
            set.tasks.len(),
            set.workers.len(),
            &set.labels,
            gold,
            priors,
        )?,
        Method::Online => return online(k, set, gold, rules),
        Method::Mv => crowd::em(
            k,
            set.tasks.len(),
            set.workers.len(),
            &set.labels,
            gold,
            &Priors {
                iterations: 0,
                ..*priors
            },
        )?,
    };
    Ok(Outcome { fit, flags: None })
}

/// The game's step over `k` classes (its distributions are fixed-size, so
/// each class count is its own instance).
fn online(
    k: usize,
    set: &LabelSet,
    gold: &[(u32, u8)],
    rules: &ReplayRules,
) -> Result<Outcome, AggregateError> {
    macro_rules! by_k {
        ($($n:literal)*) => {
            match k {
                $($n => replay::<$n>(set, gold, rules),)*
                _ => Err(CrowdError::Classes(k).into()),
            }
        };
    }
    by_k!(2 3 4 5 6 7 8 9 10 11 12 13 14 15 16)
}

fn replay<const K: usize>(
    set: &LabelSet,
    gold: &[(u32, u8)],
    rules: &ReplayRules,
) -> Result<Outcome, AggregateError> {
    let mut r = Replay::<K>::new(*rules)?;
    for (t, c) in gold {
        r.gold(*t, *c)?;
    }
    for l in &set.labels {
        r.observe(*l)?;
    }
    let fit: ReplayFit<K> = r.finish();
    let mut posteriors: Vec<Vec<f64>> = fit.posteriors.iter().map(|p| p.to_vec()).collect();
    posteriors.resize(set.tasks.len(), vec![1.0 / K as f64; K]);
    let centre = fit.crowd.newcomer().matrix;
    let mut matrices: Vec<Matrix> = fit
        .players
        .iter()
        .map(|r| r.as_ref().map_or(&centre, |r| &r.matrix).means())
        .collect();
    matrices.resize(set.workers.len(), centre.means());
    let mut flags: Vec<Option<WorkerFlag>> = fit
        .flags()
        .into_iter()
        .map(|f| f.map(WorkerFlag::from))
        .collect();
    flags.resize(set.workers.len(), None);
    Ok(Outcome {
        fit: Fit {
            k: K,
            posteriors,
            class_prior: fit.crowd.class_prior.to_vec(),
            matrices,
            pooled: Matrix::from_rows(fit.crowd.pooled.iter().map(|r| r.to_vec()).collect()),
            matrix_strength: fit.crowd.strength,
            iterations: fit.passes,
        },
        flags: Some(flags),
    })
}

#[derive(Serialize)]
struct TaskRow<'a> {
    task: &'a str,
    label: &'a str,
    confidence: f64,
    posterior: serde_json::Map<String, serde_json::Value>,
}

/// Writes `task,label,confidence` and one posterior column per class.
pub fn write_tasks(
    out: &mut impl Write,
    set: &LabelSet,
    fit: &Fit,
    format: Format,
) -> std::io::Result<()> {
    if format == Format::Csv {
        let mut header = vec!["task".to_owned(), "label".into(), "confidence".into()];
        header.extend(set.classes.iter().cloned());
        writeln!(out, "{}", csv_line(&header))?;
    }
    for (name, p) in set.tasks.iter().zip(&fit.posteriors) {
        let (best, conf) = crowd::top(p);
        match format {
            Format::Csv => {
                let mut row = vec![name.clone(), set.classes[best].clone(), fmt(conf)];
                row.extend(p.iter().map(|x| fmt(*x)));
                writeln!(out, "{}", csv_line(&row))?;
            }
            Format::Jsonl => {
                let row = TaskRow {
                    task: name,
                    label: &set.classes[best],
                    confidence: conf,
                    posterior: set
                        .classes
                        .iter()
                        .zip(p)
                        .map(|(c, x)| (c.clone(), serde_json::json!(x)))
                        .collect(),
                };
                writeln!(
                    out,
                    "{}",
                    serde_json::to_string(&row).map_err(std::io::Error::other)?
                )?;
            }
        }
    }
    Ok(())
}

/// Writes each worker's accuracy, labels, agreement, informativeness, flag
/// and confusion matrix (`truth->answer` columns, rows summing to 1).
pub fn write_workers(
    out: &mut impl Write,
    set: &LabelSet,
    fit: &Fit,
    reports: &[WorkerReport],
    format: Format,
) -> std::io::Result<()> {
    let k = set.classes.len();
    let cells: Vec<String> = (0..k * k)
        .map(|i| format!("{}->{}", set.classes[i / k], set.classes[i % k]))
        .collect();
    if format == Format::Csv {
        let mut header: Vec<String> = [
            "worker",
            "accuracy",
            "labels",
            "agreement",
            "informativeness",
            "flag",
        ]
        .map(String::from)
        .to_vec();
        header.extend(cells.iter().cloned());
        writeln!(out, "{}", csv_line(&header))?;
    }
    for ((name, m), r) in set.workers.iter().zip(&fit.matrices).zip(reports) {
        let matrix: Vec<f64> = (0..k * k).map(|i| m.p(i / k, i % k)).collect();
        match format {
            Format::Csv => {
                let mut row = vec![
                    name.clone(),
                    fmt(r.accuracy),
                    r.labels.to_string(),
                    fmt(r.agreement),
                    fmt(r.informativeness),
                    r.flag.map_or("", |f| f.as_str()).to_owned(),
                ];
                row.extend(matrix.iter().map(|x| fmt(*x)));
                writeln!(out, "{}", csv_line(&row))?;
            }
            Format::Jsonl => {
                let doc = serde_json::json!({
                    "worker": name,
                    "accuracy": r.accuracy,
                    "labels": r.labels,
                    "agreement": r.agreement,
                    "informativeness": r.informativeness,
                    "flag": r.flag.map(|f| f.as_str()),
                    "matrix": cells.iter().zip(&matrix).map(|(c, x)| (c.clone(), serde_json::json!(x))).collect::<serde_json::Map<_, _>>(),
                });
                writeln!(out, "{doc}")?;
            }
        }
    }
    Ok(())
}

/// The workers' reports with the configured flag rules.
pub fn worker_reports(set: &LabelSet, outcome: &Outcome, rules: &FlagRules) -> Vec<WorkerReport> {
    let mut reports = crowd::workers(&outcome.fit, &set.labels, rules);
    if let Some(flags) = &outcome.flags {
        for (r, f) in reports.iter_mut().zip(flags) {
            r.flag = *f;
        }
    }
    reports
}

fn fmt(x: f64) -> String {
    format!("{x:.6}")
}

/// One CSV line, quoting fields that need it.
fn csv_line(fields: &[String]) -> String {
    fields
        .iter()
        .map(|f| {
            if f.contains([',', '"', '\n', '\r']) || f.starts_with(' ') || f.ends_with(' ') {
                format!("\"{}\"", f.replace('"', "\"\""))
            } else {
                f.clone()
            }
        })
        .collect::<Vec<_>>()
        .join(",")
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn reads_either_header_style_and_orders_classes() {
        let a = "task,worker,label\nt1,w1,10\nt1,w2,9\nt2,w1,10\n";
        let set = read_labels("a.csv", a.as_bytes(), |_| {}).unwrap();
        assert_eq!(set.classes, ["9", "10"]);
        assert_eq!(set.tasks, ["t1", "t2"]);
        assert_eq!(set.labels[0].class, 1);
        let b = "answer,question,worker,extra\n\"cat, big\",q1,w1,x\ndog,q1,w2,y\n";
        let set = read_labels("b.csv", b.as_bytes(), |_| {}).unwrap();
        assert_eq!(set.classes, ["cat, big", "dog"]);
    }

    #[test]
    fn malformed_rows_are_named() {
        let e = read_labels(
            "x.csv",
            "task,worker,label\nt1,w1,a\nt2,,b\n".as_bytes(),
            |_| {},
        )
        .unwrap_err();
        assert_eq!(e.to_string(), "x.csv: row 3: empty worker");
        let e = read_labels("x.csv", "task,label\nt1,a\n".as_bytes(), |_| {}).unwrap_err();
        assert!(e.to_string().contains("no worker column"), "{e}");
        let e = read_labels(
            "x.csv",
            "task,worker,label\nt1,w1,a,extra\n".as_bytes(),
            |_| {},
        )
        .unwrap_err();
        assert!(e.to_string().starts_with("x.csv: row 2:"), "{e}");
        let many: String = (0..17).map(|i| format!("t,w{i},c{i}\n")).collect();
        let e = read_labels(
            "x.csv",
            format!("task,worker,label\n{many}").as_bytes(),
            |_| {},
        )
        .unwrap_err();
        assert!(
            e.to_string().starts_with("x.csv: row 18: label \"c16\""),
            "{e}"
        );
        let e = read_labels("x.csv", "task,worker,label\nt,w,a\n".as_bytes(), |_| {}).unwrap_err();
        assert!(e.to_string().contains("1 classes"), "{e}");
    }

    #[test]
    fn writes_named_columns() {
        let set = read_labels(
            "a.csv",
            "task,worker,label\nt1,w1,yes\nt1,w2,yes\nt2,w1,no\nt2,w2,no\n".as_bytes(),
            |_| {},
        )
        .unwrap();
        let rules = ReplayRules::closed_workforce(
            emofy_game::ConsensusRule::default(),
            emofy_game::SpamRules::default(),
            emofy_game::truth::PASS_ITERATIONS,
        );
        let outcome = aggregate(&set, Method::Em, &[], &Priors::default(), &rules).unwrap();
        let fit = &outcome.fit;
        let mut out = Vec::new();
        write_tasks(&mut out, &set, fit, Format::Csv).unwrap();
        let text = String::from_utf8(out).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "task,label,confidence,no,yes");
        assert!(lines[1].starts_with("t1,yes,"), "{text}");
        assert!(lines[2].starts_with("t2,no,"), "{text}");
        let reports = worker_reports(&set, &outcome, &FlagRules::default());
        let mut out = Vec::new();
        write_workers(&mut out, &set, fit, &reports, Format::Jsonl).unwrap();
        let first: serde_json::Value =
            serde_json::from_str(String::from_utf8(out).unwrap().lines().next().unwrap()).unwrap();
        assert_eq!(first["worker"], "w1");
        assert_eq!(first["labels"], 2);
        assert!(first["matrix"]["yes->yes"].as_f64().unwrap() > 0.5);
    }
}
