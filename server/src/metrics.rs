//! Prometheus metrics, one registry per application (no global recorder).

use std::sync::Mutex;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

/// Label for error counters.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CodeLabel {
    pub code: String,
}

/// Label for answer outcomes.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutcomeLabel {
    pub outcome: String,
}

/// The application's metrics.
pub struct Metrics {
    registry: Mutex<Registry>,
    pub connections_total: Counter,
    pub sessions_active: Gauge,
    pub rounds_offered: Counter,
    pub rounds_timed_out: Counter,
    pub answers: Family<OutcomeLabel, Counter>,
    pub images_closed: Family<OutcomeLabel, Counter>,
    pub client_errors: Family<CodeLabel, Counter>,
    pub dropped_messages: Counter,
    pub answer_seconds: Histogram,
    pub uploads: Family<OutcomeLabel, Counter>,
    pub board_pushes: Counter,
    pub viewers_active: Gauge,
    pub board_pending: Gauge,
    pub model_swaps: Counter,
    /// Sign-in attempts by outcome: `ok`, `wrong` (unknown username or
    /// wrong password, alike), `locked` (the account's soft lockout),
    /// `rate_limited` (the client address's limit).
    pub logins: Family<OutcomeLabel, Counter>,
    /// Passwords checked against a hash (argon2id): one per sign-in attempt
    /// that passed the limits, for an unknown username too (a dummy hash).
    pub password_checks: Counter,
    /// Rounds offered by kind: `plain`, `gold`, `settled`, `decoy`.
    pub round_kinds: Family<OutcomeLabel, Counter>,
    /// Answers from players whose labels do not count (flagged or banned).
    pub uncounted_answers: Counter,
    /// Moderator actions by kind.
    pub moderation: Family<OutcomeLabel, Counter>,
    /// Full truth-inference passes run, and the last one's duration.
    pub truth_passes: Counter,
    pub truth_pass_seconds: Gauge<f64, std::sync::atomic::AtomicU64>,
    /// Training runs this replica finished, by outcome: `promoted`,
    /// `candidate` (registered, not promoted), `failed`.
    pub training_runs: Family<OutcomeLabel, Counter>,
    /// 1 while this replica runs a training run.
    pub training_running: Gauge,
    /// Confidently labelled images beyond what the newest candidate learned from.
    pub training_new_labels: Gauge,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("emofy");
        let m = Metrics {
            registry: Mutex::new(Registry::default()),
            connections_total: Counter::default(),
            sessions_active: Gauge::default(),
            rounds_offered: Counter::default(),
            rounds_timed_out: Counter::default(),
            answers: Family::default(),
            images_closed: Family::default(),
            client_errors: Family::default(),
            dropped_messages: Counter::default(),
            answer_seconds: Histogram::new(exponential_buckets(0.0005, 2.0, 14)),
            uploads: Family::default(),
            board_pushes: Counter::default(),
            viewers_active: Gauge::default(),
            board_pending: Gauge::default(),
            model_swaps: Counter::default(),
            round_kinds: Family::default(),
            logins: Family::default(),
            password_checks: Counter::default(),
            uncounted_answers: Counter::default(),
            moderation: Family::default(),
            truth_passes: Counter::default(),
            truth_pass_seconds: Gauge::default(),
            training_runs: Family::default(),
            training_running: Gauge::default(),
            training_new_labels: Gauge::default(),
        };
        registry.register(
            "ws_connections",
            "WebSocket connections accepted",
            m.connections_total.clone(),
        );
        registry.register(
            "sessions_active",
            "Open player sessions",
            m.sessions_active.clone(),
        );
        registry.register("rounds_offered", "Rounds offered", m.rounds_offered.clone());
        registry.register(
            "rounds_timed_out",
            "Rounds that ran out of time",
            m.rounds_timed_out.clone(),
        );
        registry.register("answers", "Answers by outcome", m.answers.clone());
        registry.register(
            "images_closed",
            "Images retired or disputed",
            m.images_closed.clone(),
        );
        registry.register(
            "client_errors",
            "Error frames sent to clients, by code",
            m.client_errors.clone(),
        );
        registry.register(
            "dropped_messages",
            "Messages dropped because a session's mailbox was full",
            m.dropped_messages.clone(),
        );
        registry.register(
            "answer_duration_seconds",
            "Time from receiving an answer to sending its result (durable write included)",
            m.answer_seconds.clone(),
        );
        registry.register(
            "uploads",
            "Photo uploads by outcome (stored, deleted, or the error code)",
            m.uploads.clone(),
        );
        registry.register(
            "board_pushes",
            "Leaderboard updates sent to viewers",
            m.board_pushes.clone(),
        );
        registry.register(
            "viewers_active",
            "Connected leaderboard viewers",
            m.viewers_active.clone(),
        );
        registry.register(
            "board_pending",
            "Score changes waiting for the leaderboard store (Redis outage)",
            m.board_pending.clone(),
        );
        registry.register(
            "model_swaps",
            "Model versions swapped in while serving",
            m.model_swaps.clone(),
        );
        registry.register(
            "round_kinds",
            "Rounds offered by kind (plain, gold, settled, decoy)",
            m.round_kinds.clone(),
        );
        registry.register(
            "logins",
            "Sign-in attempts by outcome (ok, wrong, locked, rate_limited)",
            m.logins.clone(),
        );
        registry.register(
            "password_checks",
            "Passwords checked against a hash (unknown usernames against a dummy one)",
            m.password_checks.clone(),
        );
        registry.register(
            "uncounted_answers",
            "Answers from flagged or banned players (stored, not counted)",
            m.uncounted_answers.clone(),
        );
        registry.register(
            "moderation_actions",
            "Moderator actions by kind",
            m.moderation.clone(),
        );
        registry.register(
            "truth_passes",
            "Full truth-inference (EM) passes run",
            m.truth_passes.clone(),
        );
        registry.register(
            "truth_pass_seconds",
            "Duration of the last truth-inference pass",
            m.truth_pass_seconds.clone(),
        );
        registry.register(
            "training_runs",
            "Training runs this replica finished, by outcome",
            m.training_runs.clone(),
        );
        registry.register(
            "training_running",
            "1 while this replica runs a training run",
            m.training_running.clone(),
        );
        registry.register(
            "training_new_labels",
            "Confidently labelled images beyond what the newest model candidate learned from",
            m.training_new_labels.clone(),
        );
        if let Ok(mut r) = m.registry.lock() {
            *r = registry;
        }
        m
    }

    /// Counts a finished training run.
    pub fn training_run(&self, outcome: &str) {
        self.training_runs
            .get_or_create(&OutcomeLabel {
                outcome: outcome.to_owned(),
            })
            .inc();
    }

    /// Counts an upload outcome.
    pub fn upload(&self, outcome: &str) {
        self.uploads
            .get_or_create(&OutcomeLabel {
                outcome: outcome.to_owned(),
            })
            .inc();
    }

    /// Counts an error frame.
    pub fn client_error(&self, code: &str) {
        self.client_errors
            .get_or_create(&CodeLabel {
                code: code.to_owned(),
            })
            .inc();
    }

    /// Counts an image leaving play (`retired`, `disputed`).
    pub fn image_closed(&self, outcome: &str) {
        self.images_closed
            .get_or_create(&OutcomeLabel {
                outcome: outcome.to_owned(),
            })
            .inc();
    }

    /// Counts a labelled event (`round_kinds`, `moderation`).
    pub fn count(family: &Family<OutcomeLabel, Counter>, outcome: &str) {
        family
            .get_or_create(&OutcomeLabel {
                outcome: outcome.to_owned(),
            })
            .inc();
    }

    /// Counts an answer outcome.
    pub fn answer(&self, outcome: &str) {
        self.answers
            .get_or_create(&OutcomeLabel {
                outcome: outcome.to_owned(),
            })
            .inc();
    }

    /// Prometheus text exposition.
    pub fn render(&self) -> String {
        let mut out = String::new();
        if let Ok(r) = self.registry.lock() {
            let _ = encode(&mut out, &r);
        }
        out
    }
}
