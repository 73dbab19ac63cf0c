//! Configuration: one typed struct, layered defaults → TOML file → `EMOFY_*`
//! environment → command-line flags.
//!
//! Environment names: a top-level key is `EMOFY_<KEY>` (`EMOFY_PORT`,
//! `EMOFY_DATA_DIR`); a key in a section is `EMOFY_<SECTION>__<KEY>`
//! (`EMOFY_GAME__ROUND_SECONDS=20`). Values are parsed as TOML values
//! (numbers, booleans, arrays such as `["10.0.0.0/8"]`) and fall back to strings. `EMOFY_CONFIG` names the file.

use std::path::{Path, PathBuf};

use emofy_game::{ConsensusRule, ScoringRules};
use serde::{Deserialize, Serialize};

use crate::store::GameRules;

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    Pretty,
    /// One JSON object per line (ELK/Loki-ready).
    Json,
}

/// The whole configuration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Address to bind.
    pub host: String,
    /// Port to bind; 0 picks a free port.
    pub port: u16,
    /// Directory for the embedded store and the token key.
    pub data_dir: PathBuf,
    pub log_format: LogFormat,
    /// `tracing` filter, e.g. `info` or `emofy_server=debug,info`.
    pub log_filter: String,
    /// Seconds to wait for in-flight work on shutdown.
    pub shutdown_grace_secs: u64,
    /// HTTP worker threads (0: one per CPU core).
    pub workers: usize,
    /// Where players, images and labels live: `[storage.sqlite]` (the
    /// embedded default) or `[storage.mongodb]` (when its `uri` is set).
    pub storage: StorageConfig,
    /// Redis for leaderboards shared by replicas; unset `url`: the in-process board.
    pub redis: RedisConfig,
    pub game: GameConfig,
    pub session: SessionConfig,
    pub auth: AuthConfig,
    pub demo: DemoConfig,
    pub model: ModelConfig,
    pub upload: UploadConfig,
    pub leaderboard: LeaderboardConfig,
    pub truth: TruthConfig,
    pub moderation: ModerationConfig,
    pub imaging: ImagingConfig,
    pub net: NetConfig,
    pub metrics: MetricsConfig,
    /// Retraining the model on the crowd's labels (`emofy train`).
    pub training: TrainingConfig,
    /// Notes about deprecated keys found while loading (logged at start-up).
    #[serde(skip)]
    pub deprecations: Vec<String>,
}

/// Truth inference: gold and decoy rounds, exploration, spam detection.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TruthConfig {
    /// Serve gold rounds (images a moderator verified) on the decaying schedule.
    pub gold: bool,
    /// Faces the crowd settled beyond doubt check new players in gold
    /// rounds where no moderator-verified face is left for them (an
    /// uploads-only deployment has no other gold at first).
    pub settled_checks: emofy_game::SettledChecks,
    /// Serve decoy suggestions (a deliberately wrong class) on a share of rounds.
    pub decoys: bool,
    /// Rounds on the training test split's images show no model guess and
    /// the model does not vote on them: the labels a model is evaluated on
    /// are never biased by a model.
    pub blind_test: bool,
    pub schedule: emofy_game::Schedule,
    /// Share of picks that explore a random open image instead of the least certain one.
    pub explore: f64,
    pub spam: emofy_game::SpamRules,
    /// How much newcomers' labels weigh, when an image may retire, and how
    /// far the labels images came with (demo, imported datasets) are trusted.
    pub trust: emofy_game::TrustRules,
    /// Seconds between full truth-inference (EM) passes; 0: none on this replica.
    pub pass_every_secs: u64,
    /// Newest labels a pass reads.
    pub pass_labels: usize,
    /// Priors of truth inference over any class set (`emofy aggregate`).
    pub crowd: emofy_game::crowd::Priors,
    /// When `emofy aggregate` flags a worker.
    pub crowd_flags: emofy_game::crowd::FlagRules,
}

impl Default for TruthConfig {
    fn default() -> Self {
        TruthConfig {
            gold: true,
            settled_checks: emofy_game::SettledChecks::default(),
            decoys: true,
            blind_test: true,
            schedule: emofy_game::Schedule::default(),
            explore: 0.05,
            spam: emofy_game::SpamRules::default(),
            trust: emofy_game::TrustRules::default(),
            pass_every_secs: 600,
            pass_labels: 200_000,
            crowd: emofy_game::crowd::Priors::default(),
            crowd_flags: emofy_game::crowd::FlagRules::default(),
        }
    }
}

impl Default for Config {
    fn default() -> Self {
        Config {
            host: "127.0.0.1".into(),
            port: 8080,
            data_dir: PathBuf::from("data"),
            log_format: LogFormat::Pretty,
            log_filter: "info".into(),
            shutdown_grace_secs: 5,
            workers: 0,
            storage: StorageConfig::default(),
            redis: RedisConfig::default(),
            game: GameConfig::default(),
            session: SessionConfig::default(),
            auth: AuthConfig::default(),
            demo: DemoConfig::default(),
            model: ModelConfig::default(),
            upload: UploadConfig::default(),
            leaderboard: LeaderboardConfig::default(),
            truth: TruthConfig::default(),
            moderation: ModerationConfig::default(),
            imaging: ImagingConfig::default(),
            net: NetConfig::default(),
            metrics: MetricsConfig::default(),
            training: TrainingConfig::default(),
            deprecations: Vec::new(),
        }
    }
}

/// Retraining: which images train, the run's hyperparameters, the
/// promotion gate, and where trained models go.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TrainingConfig {
    /// `[training.data]`: the confidence a crowd label needs to train, and
    /// whether the labels images came with train too.
    pub data: emofy_game::training::DataRules,
    /// `[training.fit]`: epochs, batch size, learning rate, weight decay,
    /// which layers train, augmentation, seed.
    pub fit: emofy_inference::train::TrainConfig,
    /// `[training.gate]`: the margin, significance, recall floor and
    /// reference tolerance a candidate must meet to replace the champion.
    pub gate: emofy_game::training::GateRules,
    /// Where trained models are written (one directory per version);
    /// unset: `<data_dir>/models`.
    pub models_dir: Option<PathBuf>,
    /// The most faces a reference or evaluation set (`--reference`,
    /// `emofy model evaluate --dataset`) may hold.
    pub max_labelled_faces: usize,
    /// A candidate the gate passes becomes the champion at once (every
    /// replica swaps to it); off: it waits as a candidate for
    /// `emofy model promote`.
    pub auto_promote: bool,
    /// How long a run's lease on the store lasts (a run renews it every
    /// third of this; a run that dies frees it after this), in ms.
    pub lease_ms: u64,
    /// `[training.background]`: the trainer every replica runs, which
    /// starts a run by itself when enough new confident labels arrived.
    pub background: BackgroundTraining,
}

/// The background trainer. At most one run at a time across every replica
/// and `emofy train` (the store's `training` lease); a run on a replica
/// uses `threads` worker threads at a lowered priority (`nice`), so play
/// keeps the other cores and wins any contention.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BackgroundTraining {
    pub enabled: bool,
    /// How often the trigger is checked, in ms.
    pub check_every_ms: u64,
    /// Train when this many more images are confidently labelled than the
    /// newest trained candidate learned from.
    pub every_new_labels: u32,
    /// At least this long between two runs this replica starts, in ms.
    pub min_interval_ms: u64,
    /// Worker threads one run may use (1..=64).
    pub threads: usize,
    /// The workers' nice value (0..=19; higher yields to play more).
    pub nice: i32,
}

impl Default for BackgroundTraining {
    fn default() -> Self {
        let rules = emofy_game::retrain::TrainerRules::default();
        BackgroundTraining {
            enabled: true,
            check_every_ms: 60_000,
            every_new_labels: rules.every_new_labels,
            min_interval_ms: rules.min_interval_ms,
            threads: 1,
            nice: 10,
        }
    }
}

impl BackgroundTraining {
    /// The trigger's rules.
    pub fn rules(&self) -> emofy_game::retrain::TrainerRules {
        emofy_game::retrain::TrainerRules {
            every_new_labels: self.every_new_labels,
            min_interval_ms: self.min_interval_ms,
        }
    }
}

impl Default for TrainingConfig {
    fn default() -> Self {
        TrainingConfig {
            data: emofy_game::training::DataRules::default(),
            fit: emofy_inference::train::TrainConfig::default(),
            gate: emofy_game::training::GateRules::default(),
            models_dir: None,
            max_labelled_faces: 200_000,
            auto_promote: true,
            lease_ms: 10 * 60 * 1000,
            background: BackgroundTraining::default(),
        }
    }
}

impl TrainingConfig {
    /// The directory trained models go to.
    pub fn models_dir(&self, data_dir: &Path) -> PathBuf {
        self.models_dir
            .clone()
            .unwrap_or_else(|| data_dir.join("models"))
    }
}

/// Every image decode (uploads, face previews, filters, import, predict).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ImagingConfig {
    /// Largest accepted width or height in pixels (read from the header, before decoding).
    pub max_side: u32,
    /// Largest accepted width × height.
    pub max_pixels: u64,
    /// Largest memory one decode may take, in MiB (estimated from the header; also the decoder's allocation limit).
    pub max_decode_mib: u64,
    /// Images decoded at once by all image endpoints together; more get `503 busy`.
    pub concurrent: usize,
    /// The `Retry-After` seconds sent with `503 busy`.
    pub retry_after_secs: u64,
}

impl Default for ImagingConfig {
    fn default() -> Self {
        let d = emofy_inference::DecodeLimits::DEFAULT;
        ImagingConfig {
            max_side: d.max_side,
            max_pixels: d.max_pixels,
            max_decode_mib: d.max_bytes >> 20,
            concurrent: 2,
            retry_after_secs: 2,
        }
    }
}

impl ImagingConfig {
    /// The decoder's limits.
    pub fn limits(&self) -> emofy_inference::DecodeLimits {
        emofy_inference::DecodeLimits {
            max_side: self.max_side,
            max_pixels: self.max_pixels,
            max_bytes: self.max_decode_mib.saturating_mul(1 << 20),
        }
    }
}

/// Connections and requests: timeouts, per-address limits, allowed origins.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct NetConfig {
    /// A request body must arrive within this many seconds of its headers (`408 body_timeout`).
    pub body_timeout_secs: u64,
    /// Request headers must arrive within this many milliseconds of the connection (or the last request).
    pub header_timeout_ms: u64,
    /// Idle keep-alive connections close after this many seconds.
    pub keep_alive_secs: u64,
    /// Open connections per client address (IPv6: per /64); more are answered `429` and closed. 0: no limit.
    pub per_ip_connections: usize,
    /// New guest players per client address per hour (sustained); 0: no limit.
    pub guests_per_ip_per_hour: u32,
    /// Guests a client address may create in a burst.
    pub guest_burst: u32,
    /// Sign-in attempts (`POST /api/login`) per client address per minute
    /// (sustained; beyond: `429 rate_limited` with `Retry-After`); 0: no limit.
    pub logins_per_ip_per_minute: u32,
    /// Sign-in attempts a client address may make in a burst.
    pub login_burst: u32,
    /// Whether loopback clients (127.0.0.1, ::1) are exempt from the per-address limits.
    pub exempt_loopback: bool,
    /// Reverse proxies (IP addresses or CIDR blocks) whose `X-Forwarded-For` names the client.
    pub trusted_proxies: Vec<String>,
    /// Origins allowed to open `/ws/*` besides the server's own host (e.g. `https://play.example.org`; `*`: any).
    /// Requests without an `Origin` header (non-browser clients) are allowed.
    pub allowed_origins: Vec<String>,
}

impl Default for NetConfig {
    fn default() -> Self {
        NetConfig {
            body_timeout_secs: 30,
            header_timeout_ms: 5000,
            keep_alive_secs: 30,
            per_ip_connections: 64,
            guests_per_ip_per_hour: 60,
            guest_burst: 20,
            logins_per_ip_per_minute: 10,
            login_burst: 10,
            exempt_loopback: false,
            trusted_proxies: Vec::new(),
            allowed_origins: Vec::new(),
        }
    }
}

/// The Prometheus endpoint.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MetricsConfig {
    /// Serve `/metrics` on this address (e.g. `0.0.0.0:9464`) instead of the main port.
    pub bind: Option<String>,
    /// With a token, `/metrics` on the main port answers `Authorization: Bearer <token>` from anywhere.
    /// Without a bind address or a token, it answers loopback clients only.
    pub token: Option<String>,
}

/// Round timing, consensus and scoring.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GameConfig {
    /// Seconds a player has to answer a round.
    pub round_seconds: u64,
    /// Retire an image once it has at least this many counted labels…
    pub min_labels: u32,
    /// …and its truth posterior's top class has at least this probability (0.5 < x ≤ 1).
    pub confidence: f64,
    /// Mark an image disputed at this many counted labels without consensus.
    pub max_labels: u32,
    /// Pick randomly among up to this many equally ranked images.
    pub selection_spread: usize,
    /// Seconds between reloads of the image pool from the store (picks up other replicas' votes).
    pub pool_refresh_secs: u64,
    pub scoring: ScoringRules,
}

impl Default for GameConfig {
    fn default() -> Self {
        GameConfig {
            round_seconds: 15,
            min_labels: 3,
            confidence: 0.9,
            max_labels: 9,
            selection_spread: 8,
            pool_refresh_secs: 2,
            scoring: ScoringRules::default(),
        }
    }
}

/// Per-connection limits and timers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SessionConfig {
    /// Server ping interval.
    pub heartbeat_secs: u64,
    /// Close a connection silent (no frames, no pongs) for this long.
    pub client_timeout_secs: u64,
    /// Close a joined connection with no game messages for this long.
    pub idle_timeout_secs: u64,
    /// Close a connection that has not sent `hello` within this time.
    pub hello_timeout_secs: u64,
    /// Largest accepted frame in bytes.
    pub max_frame_bytes: usize,
    /// Sustained messages per second allowed per connection.
    pub rate_per_sec: u32,
    /// Burst size of the rate limiter.
    pub rate_burst: u32,
    /// Close a connection after this many rate-limited messages in a row.
    pub max_violations: u32,
    /// Bounded mailbox of each session actor; producers drop messages for a full one.
    pub mailbox: usize,
    /// A leaderboard snapshot follows a result only if the last one is older than this.
    pub leaderboard_every_ms: u64,
}

impl Default for SessionConfig {
    fn default() -> Self {
        SessionConfig {
            heartbeat_secs: 5,
            client_timeout_secs: 10,
            idle_timeout_secs: 300,
            hello_timeout_secs: 10,
            max_frame_bytes: 4096,
            rate_per_sec: 10,
            rate_burst: 20,
            max_violations: 50,
            mailbox: 32,
            leaderboard_every_ms: 2000,
        }
    }
}

/// Session tokens.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuthConfig {
    /// Token signing secret (≥ 32 bytes). Unset: a key is generated into `<data_dir>/token.key`.
    pub token_secret: Option<String>,
    /// Token lifetime in hours.
    pub token_ttl_hours: u64,
    /// The soft lockout of an account after failed sign-ins.
    pub login: emofy_game::login::LoginRules,
}

impl Default for AuthConfig {
    fn default() -> Self {
        AuthConfig {
            token_secret: None,
            token_ttl_hours: 24 * 30,
            login: emofy_game::login::LoginRules::default(),
        }
    }
}

/// The synthetic demo-face pool.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DemoConfig {
    /// Generate this many synthetic faces when the store has no images (0: none).
    pub images: u32,
    /// Generator seed (same seed, same faces).
    pub seed: u64,
}

impl Default for DemoConfig {
    fn default() -> Self {
        DemoConfig {
            images: 500,
            seed: 2024,
        }
    }
}

/// The emotion model whose guesses rounds show.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ModelConfig {
    /// Classify images and show the model's guess in rounds.
    pub enabled: bool,
    /// A model directory (`config.json` + `model.safetensors`); unset: the bundled mini-Xception.
    pub dir: Option<PathBuf>,
    /// Inference worker threads (0: one per core but one, at least one).
    pub workers: usize,
    /// Requests in flight before the pool answers "busy".
    pub queue: usize,
    /// The folder the admin model swap may load from (`{"dir": "<name under it>"}`); unset: only `model.dir`.
    pub models_root: Option<PathBuf>,
    /// Largest model file the swap reads, in MiB.
    pub max_file_mib: u64,
    /// Seconds a model swap may take to read and build the model.
    pub load_timeout_secs: u64,
    /// How often each replica reads the registry's champion and swaps to a
    /// new one, in milliseconds (0: never; the replica keeps what it started with).
    pub registry_poll_ms: u64,
    /// Largest model whose files the registry keeps in the store (for
    /// replicas that share no disk), in MiB; a larger base model is
    /// registered without files and each replica loads it from `model.dir`.
    pub store_max_mib: u64,
}

impl Default for ModelConfig {
    fn default() -> Self {
        ModelConfig {
            enabled: true,
            dir: None,
            workers: 0,
            queue: 256,
            models_root: None,
            max_file_mib: 512,
            load_timeout_secs: 60,
            registry_poll_ms: 2000,
            store_max_mib: 64,
        }
    }
}

/// Contributed photos.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct UploadConfig {
    /// Largest accepted file in bytes.
    pub max_bytes: usize,
    /// Smallest face-detector score that counts as a face.
    pub min_face_score: f64,
    /// Side in pixels of the stored face crop (a smaller face is kept at its own size).
    pub crop_side: u32,
    /// Uploads a contributor may make per hour.
    pub per_hour: u32,
}

impl Default for UploadConfig {
    fn default() -> Self {
        UploadConfig {
            max_bytes: 10 * 1024 * 1024,
            min_face_score: 5.0,
            crop_side: 256,
            per_hour: 60,
        }
    }
}

/// Leaderboards and their live viewers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LeaderboardConfig {
    /// Viewers get at most one update per this many milliseconds (coalescing).
    pub push_every_ms: u64,
    /// Updates queued for one viewer before it is dropped as too slow.
    pub viewer_mailbox: usize,
    /// Score changes kept in memory while Redis is down (past that: replay from the store's ledger).
    pub buffer: usize,
    /// How long day and week boards stay in Redis after their period ends.
    pub grace_hours: u64,
    /// While Redis is away, buffered score changes are retried this often.
    pub retry_every_ms: u64,
}

impl Default for LeaderboardConfig {
    fn default() -> Self {
        LeaderboardConfig {
            push_every_ms: 100,
            viewer_mailbox: 8,
            buffer: 100_000,
            grace_hours: 48,
            retry_every_ms: 500,
        }
    }
}

/// The moderators' review queue.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ModerationConfig {
    /// The queue ranks this many most recently changed disputed or uncertain images.
    pub queue_candidates: usize,
    /// Labels read (and shown) per queued image, oldest first.
    pub queue_labels: usize,
}

impl Default for ModerationConfig {
    fn default() -> Self {
        ModerationConfig {
            queue_candidates: 500,
            queue_labels: 100,
        }
    }
}

/// When the embedded store's commits reach the disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Synchronous {
    /// fsync on every commit: an acknowledged answer survives a power cut.
    Full,
    /// fsync at WAL checkpoints only: an acknowledged answer survives a process crash
    /// (SIGKILL) but the last commits can be lost in a power cut or OS crash.
    Normal,
}

/// Storage back-ends.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StorageConfig {
    pub sqlite: SqliteConfig,
    pub mongodb: MongoConfig,
}

/// The embedded store (SQLite in `data_dir`), used unless `storage.mongodb.uri` is set.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SqliteConfig {
    pub synchronous: Synchronous,
    /// Queued writes before callers wait.
    pub write_queue: usize,
    /// Most writes committed together (group commit).
    pub max_batch: usize,
    /// Read-only connections (reads run on the blocking pool).
    pub readers: usize,
    /// Milliseconds between background WAL checkpoints: PASSIVE (never blocks the
    /// writer), then RESTART once the WAL holds more than `wal_limit_mib`.
    pub checkpoint_every_ms: u64,
    /// Past this many MiB in the WAL it is restarted (reused from its start, the file
    /// trimmed back to this size); at twice that file size the writer restarts it itself.
    pub wal_limit_mib: u64,
    /// Page cache per connection, in MiB.
    pub cache_mib: u64,
    /// How long a connection waits for a lock before it gives up.
    pub busy_timeout_ms: u64,
    /// How often the writer and the checkpointer retry a busy lock, in microseconds.
    pub busy_poll_us: u64,
    /// Group commits and checkpoints slower than this are logged (WARN).
    pub slow_log_ms: u64,
}

impl Default for SqliteConfig {
    fn default() -> Self {
        SqliteConfig {
            synchronous: Synchronous::Full,
            write_queue: 4096,
            max_batch: 512,
            readers: 2,
            checkpoint_every_ms: 200,
            wal_limit_mib: 16,
            cache_mib: 16,
            busy_timeout_ms: 5000,
            busy_poll_us: 100,
            slow_log_ms: 50,
        }
    }
}

/// MongoDB for players, images and labels (several replicas share it).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MongoConfig {
    /// Connection string (`EMOFY_STORAGE__MONGODB__URI`); unset: the embedded store.
    pub uri: Option<String>,
    /// The database.
    pub database: String,
    /// Write concern `majority` (with journal) instead of `w: 1` (with journal). Use it with a replica set.
    pub majority: bool,
    /// Answers go through the label writer (group commit); `false`: one transaction per answer.
    pub group_commit: bool,
    /// Most answers the label writer commits in one transaction.
    pub max_batch: usize,
    /// Answers queued for the label writer before callers wait.
    pub write_queue: usize,
    /// Seconds to reach the server and prepare its indexes at start-up.
    pub connect_timeout_secs: u64,
    /// Server selection (and connection) timeout unless the URI sets one: short, so
    /// that a player gets `try_again` rather than a hang while the server is away.
    pub server_selection_timeout_ms: u64,
    /// How long a player waits for an answer to be confirmed before `try_again`.
    pub answer_deadline_ms: u64,
    /// A multi-document write that keeps meeting transient errors is retried until this deadline…
    pub transaction_deadline_ms: u64,
    /// …at most this many times.
    pub transaction_attempts: usize,
}

impl Default for MongoConfig {
    fn default() -> Self {
        MongoConfig {
            uri: None,
            database: "emofy".into(),
            majority: false,
            group_commit: true,
            max_batch: 256,
            write_queue: 4096,
            connect_timeout_secs: 15,
            server_selection_timeout_ms: 2000,
            answer_deadline_ms: 30_000,
            transaction_deadline_ms: 10_000,
            transaction_attempts: 12,
        }
    }
}

/// Redis, for leaderboards shared by replicas.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RedisConfig {
    /// `redis://host:port` (`EMOFY_REDIS__URL`); unset: the in-process board.
    pub url: Option<String>,
    /// Prefix of every key (one per deployment; tests use a random one).
    pub prefix: String,
    /// Command timeout.
    pub timeout_ms: u64,
    /// Wait before re-subscribing to the score-event channel after a lost connection.
    pub reconnect_ms: u64,
}

impl Default for RedisConfig {
    fn default() -> Self {
        RedisConfig {
            url: None,
            prefix: "emofy".into(),
            timeout_ms: 500,
            reconnect_ms: 1000,
        }
    }
}

/// Configuration errors.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("{path}: {message}")]
    Parse { path: String, message: String },
    #[error("environment variable {name}: {message}")]
    Env { name: String, message: String },
    #[error("invalid configuration: {0}")]
    Invalid(String),
}

/// Flags that override the file and environment (`None` = not given).
#[derive(Debug, Clone, Default, clap::Args)]
pub struct Overrides {
    /// Address to bind.
    #[arg(long, env = "EMOFY_HOST")]
    pub host: Option<String>,
    /// Port to bind (0 = any free port).
    #[arg(long, short, env = "EMOFY_PORT")]
    pub port: Option<u16>,
    /// Data directory for the embedded store.
    #[arg(long, env = "EMOFY_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// Log format.
    #[arg(long, value_enum, env = "EMOFY_LOG_FORMAT")]
    pub log_format: Option<LogFormat>,
    /// Log filter, e.g. `debug` or `emofy_server=debug,info`.
    #[arg(long, env = "EMOFY_LOG_FILTER")]
    pub log_filter: Option<String>,
    /// Seconds per round.
    #[arg(long)]
    pub round_seconds: Option<u64>,
    /// Synthetic demo faces to generate into an empty store.
    #[arg(long)]
    pub demo_images: Option<u32>,
}

impl Config {
    /// Loads defaults → `file` (or `EMOFY_CONFIG`) → `EMOFY_*` from `env` → `flags`.
    pub fn load(
        file: Option<&Path>,
        env: impl IntoIterator<Item = (String, String)>,
        flags: &Overrides,
    ) -> Result<Config, ConfigError> {
        let env: Vec<(String, String)> = env.into_iter().collect();
        let file = file.map(Path::to_path_buf).or_else(|| {
            env.iter()
                .find(|(k, _)| k == "EMOFY_CONFIG")
                .map(|(_, v)| PathBuf::from(v))
        });
        let mut table = toml::Table::new();
        if let Some(path) = &file {
            let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
                path: path.display().to_string(),
                source,
            })?;
            table = text
                .parse::<toml::Table>()
                .map_err(|e| ConfigError::Parse {
                    path: format!("config file {}", path.display()),
                    message: e.to_string(),
                })?;
        }
        for (name, value) in &env {
            let Some(rest) = name.strip_prefix("EMOFY_") else {
                continue;
            };
            if rest == "CONFIG" || rest.is_empty() {
                continue;
            }
            let path: Vec<String> = rest.split("__").map(|p| p.to_ascii_lowercase()).collect();
            if path.iter().any(String::is_empty) {
                return Err(ConfigError::Env {
                    name: name.clone(),
                    message: "empty path segment".into(),
                });
            }
            set_path(&mut table, &path, scalar(value)).map_err(|message| ConfigError::Env {
                name: name.clone(),
                message,
            })?;
        }
        let deprecations = apply_aliases(&mut table);
        let mut config: Config =
            toml::Value::Table(table)
                .try_into()
                .map_err(|e: toml::de::Error| ConfigError::Parse {
                    path: match &file {
                        Some(p) => format!("{} or the EMOFY_* environment", p.display()),
                        None => "the EMOFY_* environment".into(),
                    },
                    message: e.to_string().trim().to_owned(),
                })?;
        config.deprecations = deprecations;
        config.apply(flags);
        config.validate()?;
        Ok(config)
    }

    fn apply(&mut self, f: &Overrides) {
        if let Some(v) = &f.host {
            self.host = v.clone();
        }
        if let Some(v) = f.port {
            self.port = v;
        }
        if let Some(v) = &f.data_dir {
            self.data_dir = v.clone();
        }
        if let Some(v) = f.log_format {
            self.log_format = v;
        }
        if let Some(v) = &f.log_filter {
            self.log_filter = v.clone();
        }
        if let Some(v) = f.round_seconds {
            self.game.round_seconds = v;
        }
        if let Some(v) = f.demo_images {
            self.demo.images = v;
        }
    }

    /// Checks values that types alone cannot.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.rules()?;
        let guesses = self.auth.login.attempts_per_hour();
        if guesses > 100 {
            return Err(ConfigError::Invalid(format!(
                "auth.login allows {guesses} failed sign-ins per hour per account; at most 100 (OWASP ASVS)"
            )));
        }
        if self.game.round_seconds == 0 || self.game.round_seconds > 3600 {
            return Err(ConfigError::Invalid(
                "game.round_seconds must be 1..=3600".into(),
            ));
        }
        let s = &self.session;
        if s.heartbeat_secs == 0 || s.client_timeout_secs <= s.heartbeat_secs {
            return Err(ConfigError::Invalid(
                "session.client_timeout_secs must exceed session.heartbeat_secs (> 0)".into(),
            ));
        }
        let (sq, mg) = (&self.storage.sqlite, &self.storage.mongodb);
        if sq.write_queue == 0
            || sq.max_batch == 0
            || sq.readers == 0
            || sq.busy_timeout_ms == 0
            || sq.busy_poll_us == 0
            || mg.max_batch == 0
            || mg.write_queue == 0
            || mg.connect_timeout_secs == 0
        {
            return Err(ConfigError::Invalid(
                "storage.sqlite.{write_queue, max_batch, readers, busy_timeout_ms, busy_poll_us} and \
                 storage.mongodb.{max_batch, write_queue, connect_timeout_secs} must be positive"
                    .into(),
            ));
        }
        if s.max_frame_bytes < 256 || s.rate_per_sec == 0 || s.rate_burst == 0 || s.mailbox == 0 {
            return Err(ConfigError::Invalid(
                "session limits must be positive (max_frame_bytes ≥ 256)".into(),
            ));
        }
        let l = &self.leaderboard;
        if l.push_every_ms == 0
            || l.viewer_mailbox == 0
            || l.buffer == 0
            || self.redis.timeout_ms == 0
        {
            return Err(ConfigError::Invalid(
                "leaderboard.{push_every_ms, viewer_mailbox, buffer} and redis.timeout_ms must be positive".into(),
            ));
        }
        if self.redis.prefix.is_empty() || self.redis.prefix.contains(char::is_whitespace) {
            return Err(ConfigError::Invalid(
                "redis.prefix must be non-empty, without spaces".into(),
            ));
        }
        let t = &self.training;
        if t.fit.epochs == 0
            || t.fit.epochs > 10_000
            || !(2..=4096).contains(&t.fit.batch_size)
            || !(t.fit.learning_rate > 0.0 && t.fit.learning_rate < 1.0)
            || !(0.0..=1.0).contains(&t.data.min_confidence)
            || !(t.gate.alpha > 0.0 && t.gate.alpha <= 1.0)
        {
            return Err(ConfigError::Invalid(
                "training: fit.epochs 1..=10000, fit.batch_size 2..=4096, 0 < fit.learning_rate < 1, \
                 data.min_confidence 0..=1, 0 < gate.alpha ≤ 1"
                    .into(),
            ));
        }
        let b = &t.background;
        if t.lease_ms < 1000
            || b.check_every_ms < 50
            || !(1..=64).contains(&b.threads)
            || !(0..=19).contains(&b.nice)
        {
            return Err(ConfigError::Invalid(
                "training: lease_ms ≥ 1000, background.check_every_ms ≥ 50, background.threads \
                 1..=64, background.nice 0..=19"
                    .into(),
            ));
        }
        let u = &self.upload;
        if u.max_bytes < 1024 || u.crop_side < 64 || u.per_hour == 0 {
            return Err(ConfigError::Invalid(
                "upload limits: max_bytes ≥ 1024, crop_side ≥ 64, per_hour ≥ 1".into(),
            ));
        }
        let i = &self.imaging;
        if i.max_side < 64 || i.max_pixels < 4096 || i.max_decode_mib == 0 || i.concurrent == 0 {
            return Err(ConfigError::Invalid(
                "imaging limits: max_side ≥ 64, max_pixels ≥ 4096, max_decode_mib and concurrent ≥ 1"
                    .into(),
            ));
        }
        let n = &self.net;
        if n.body_timeout_secs == 0 || n.header_timeout_ms == 0 {
            return Err(ConfigError::Invalid(
                "net.body_timeout_secs and net.header_timeout_ms must be positive".into(),
            ));
        }
        for p in &n.trusted_proxies {
            crate::net::ipnet::IpNet::parse(p)
                .map_err(|e| ConfigError::Invalid(format!("net.trusted_proxies: {p:?}: {e}")))?;
        }
        let m = &self.moderation;
        if !(1..=10_000).contains(&m.queue_candidates) || !(1..=1_000).contains(&m.queue_labels) {
            return Err(ConfigError::Invalid(
                "moderation.queue_candidates must be 1..=10000 and moderation.queue_labels 1..=1000"
                    .into(),
            ));
        }
        if sq.checkpoint_every_ms == 0 {
            return Err(ConfigError::Invalid(
                "storage.sqlite.checkpoint_every_ms must be positive".into(),
            ));
        }
        if let Some(t) = &self.metrics.token
            && t.len() < 16
        {
            return Err(ConfigError::Invalid(
                "metrics.token must be at least 16 characters".into(),
            ));
        }
        if self.model.max_file_mib == 0 || self.model.load_timeout_secs == 0 {
            return Err(ConfigError::Invalid(
                "model.max_file_mib and model.load_timeout_secs must be positive".into(),
            ));
        }
        if let Some(secret) = &self.auth.token_secret
            && secret.len() < 32
        {
            return Err(ConfigError::Invalid(
                "auth.token_secret must be at least 32 bytes".into(),
            ));
        }
        Ok(())
    }

    /// The game rules this configuration describes.
    pub fn rules(&self) -> Result<GameRules, ConfigError> {
        let g = &self.game;
        if !(g.confidence > 0.5 && g.confidence <= 1.0) {
            return Err(ConfigError::Invalid(
                "game.confidence must be in (0.5, 1.0]".into(),
            ));
        }
        let t = &self.truth;
        let shares = [
            t.explore,
            t.schedule.gold_start,
            t.schedule.gold_floor,
            t.schedule.gold_decay,
            t.schedule.decoy_share,
            t.spam.fast_share,
            t.spam.same_button_share,
            t.spam.decoy_follow_share,
            t.spam.min_informativeness,
            t.spam.honest_accuracy,
            t.trust.newcomer_weight,
            t.trust.check_confidence,
            t.trust.demo_label_trust,
            t.trust.dataset_label_trust,
        ];
        if shares.iter().any(|x| !(0.0..=1.0).contains(x)) {
            return Err(ConfigError::Invalid(
                "truth: shares, rates and decay must be in [0, 1]".into(),
            ));
        }
        let permille = (g.confidence * 1000.0).round() as u32;
        let consensus = ConsensusRule::new(g.min_labels, permille.max(501), g.max_labels)
            .map_err(|e| ConfigError::Invalid(format!("game: {e}")))?;
        Ok(GameRules {
            consensus,
            scoring: g.scoring,
            spam: t.spam,
            trust: t.trust,
        })
    }
}

/// Keys that moved: `(old path, new path)`. The old one is still accepted
/// (file or environment) with a deprecation note; the new one wins when both are given.
const ALIASES: &[(&str, &str)] = &[
    ("upload.max_side", "imaging.max_side"),
    ("upload.concurrent", "imaging.concurrent"),
    ("store.synchronous", "storage.sqlite.synchronous"),
    ("store.write_queue", "storage.sqlite.write_queue"),
    ("store.max_batch", "storage.sqlite.max_batch"),
    ("store.readers", "storage.sqlite.readers"),
    (
        "store.checkpoint_every_ms",
        "storage.sqlite.checkpoint_every_ms",
    ),
    ("store.wal_limit_mib", "storage.sqlite.wal_limit_mib"),
    ("mongodb_uri", "storage.mongodb.uri"),
    ("mongodb_database", "storage.mongodb.database"),
    ("mongodb_majority", "storage.mongodb.majority"),
    ("mongodb_group_commit", "storage.mongodb.group_commit"),
    ("mongodb_max_batch", "storage.mongodb.max_batch"),
    ("redis_url", "redis.url"),
    ("redis_prefix", "redis.prefix"),
    ("leaderboard.redis_timeout_ms", "redis.timeout_ms"),
];

/// Moves deprecated keys to their new places; returns a note for each.
fn apply_aliases(table: &mut toml::Table) -> Vec<String> {
    let mut notes = Vec::new();
    for (old, new) in ALIASES {
        let old_path: Vec<&str> = old.split('.').collect();
        let Some(value) = take_path(table, &old_path) else {
            continue;
        };
        let env = format!("EMOFY_{}", new.replace('.', "__").to_ascii_uppercase());
        notes.push(format!(
            "`{old}` is deprecated; use `{new}` (environment: {env})"
        ));
        let new_path: Vec<String> = new.split('.').map(str::to_owned).collect();
        if get_path(table, &new_path).is_none() {
            let _ = set_path(table, &new_path, value);
        }
        // A section the moves emptied (`[store]`) is gone with its keys.
        if let [section, _] = old_path.as_slice()
            && matches!(table.get(*section), Some(toml::Value::Table(t)) if t.is_empty())
        {
            table.remove(*section);
        }
    }
    notes
}

fn take_path(table: &mut toml::Table, path: &[&str]) -> Option<toml::Value> {
    match path {
        [] => None,
        [last] => table.remove(*last),
        [first, rest @ ..] => match table.get_mut(*first) {
            Some(toml::Value::Table(t)) => take_path(t, rest),
            _ => None,
        },
    }
}

fn get_path<'a>(table: &'a toml::Table, path: &[String]) -> Option<&'a toml::Value> {
    match path {
        [] => None,
        [last] => table.get(last),
        [first, rest @ ..] => match table.get(first) {
            Some(toml::Value::Table(t)) => get_path(t, rest),
            _ => None,
        },
    }
}

fn scalar(raw: &str) -> toml::Value {
    match format!("v = {raw}").parse::<toml::Table>() {
        Ok(mut t) => match t.remove("v") {
            Some(
                v @ (toml::Value::Integer(_)
                | toml::Value::Float(_)
                | toml::Value::Boolean(_)
                | toml::Value::Array(_)),
            ) => v,
            _ => toml::Value::String(raw.to_owned()),
        },
        Err(_) => toml::Value::String(raw.to_owned()),
    }
}

fn set_path(table: &mut toml::Table, path: &[String], value: toml::Value) -> Result<(), String> {
    match path {
        [] => Err("empty name".into()),
        [last] => {
            table.insert(last.clone(), value);
            Ok(())
        }
        [first, rest @ ..] => {
            let entry = table
                .entry(first.clone())
                .or_insert_with(|| toml::Value::Table(toml::Table::new()));
            match entry {
                toml::Value::Table(t) => set_path(t, rest, value),
                _ => Err(format!("{first} is not a section")),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn defaults_are_valid() {
        let c = Config::load(None, env(&[]), &Overrides::default());
        assert_eq!(c.ok(), Some(Config::default()));
    }

    #[test]
    fn layers_apply_in_order() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let file = dir.path().join("emofy.toml");
        std::fs::write(
            &file,
            "port = 9000\nhost = \"0.0.0.0\"\n[game]\nround_seconds = 20\nmin_labels = 4\n",
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let e = env(&[
            ("EMOFY_PORT", "9100"),
            ("EMOFY_GAME__MIN_LABELS", "5"),
            ("OTHER", "x"),
        ]);
        let flags = Overrides {
            port: Some(9200),
            ..Overrides::default()
        };
        let c = Config::load(Some(&file), e.clone(), &flags).unwrap_or_else(|err| panic!("{err}"));
        assert_eq!(c.host, "0.0.0.0"); // file
        assert_eq!(c.game.round_seconds, 20); // file
        assert_eq!(c.game.min_labels, 5); // env over file
        assert_eq!(c.port, 9200); // flag over env
        let c = Config::load(Some(&file), e, &Overrides::default())
            .unwrap_or_else(|err| panic!("{err}"));
        assert_eq!(c.port, 9100);
    }

    #[test]
    fn lists_come_from_the_environment_as_toml_arrays() {
        let e = env(&[(
            "EMOFY_NET__TRUSTED_PROXIES",
            r#"["10.0.0.0/8", "192.168.1.2"]"#,
        )]);
        let c = Config::load(None, e, &Overrides::default()).unwrap_or_else(|err| panic!("{err}"));
        assert_eq!(c.net.trusted_proxies, vec!["10.0.0.0/8", "192.168.1.2"]);
        let e = env(&[("EMOFY_NET__TRUSTED_PROXIES", r#"["not an address"]"#)]);
        assert!(matches!(
            Config::load(None, e, &Overrides::default()),
            Err(ConfigError::Invalid(_))
        ));
    }

    #[test]
    fn old_keys_are_accepted_with_a_note() {
        let e = env(&[("EMOFY_UPLOAD__MAX_SIDE", "4000")]);
        let c = Config::load(None, e, &Overrides::default()).unwrap_or_else(|err| panic!("{err}"));
        assert_eq!(c.imaging.max_side, 4000);
        assert_eq!(c.deprecations.len(), 1);
        // The new key wins over the old one.
        let e = env(&[
            ("EMOFY_UPLOAD__CONCURRENT", "5"),
            ("EMOFY_IMAGING__CONCURRENT", "3"),
        ]);
        let c = Config::load(None, e, &Overrides::default()).unwrap_or_else(|err| panic!("{err}"));
        assert_eq!(c.imaging.concurrent, 3);
    }

    #[test]
    fn storage_and_redis_keys_moved_into_sections() {
        // The environment names operators use today still work.
        let e = env(&[
            ("EMOFY_REDIS_URL", "redis://r:6379"),
            ("EMOFY_REDIS_PREFIX", "p"),
            ("EMOFY_MONGODB_URI", "mongodb://m:27017"),
            ("EMOFY_MONGODB_DATABASE", "d"),
            ("EMOFY_MONGODB_GROUP_COMMIT", "false"),
            ("EMOFY_STORE__WAL_LIMIT_MIB", "4"),
            ("EMOFY_LEADERBOARD__REDIS_TIMEOUT_MS", "250"),
        ]);
        let c = Config::load(None, e, &Overrides::default()).unwrap_or_else(|err| panic!("{err}"));
        assert_eq!(c.redis.url.as_deref(), Some("redis://r:6379"));
        assert_eq!(c.redis.prefix, "p");
        assert_eq!(c.redis.timeout_ms, 250);
        assert_eq!(c.storage.mongodb.uri.as_deref(), Some("mongodb://m:27017"));
        assert_eq!(c.storage.mongodb.database, "d");
        assert!(!c.storage.mongodb.group_commit);
        assert_eq!(c.storage.sqlite.wal_limit_mib, 4);
        assert_eq!(c.deprecations.len(), 7);
        assert!(
            c.deprecations
                .iter()
                .any(|n| n.contains("EMOFY_STORAGE__MONGODB__URI")),
            "{:?}",
            c.deprecations
        );
        // A file with the old `[store]` section and top-level keys.
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let file = dir.path().join("old.toml");
        std::fs::write(
            &file,
            "redis_url = \"redis://f\"\nmongodb_max_batch = 9\n[store]\nreaders = 3\nsynchronous = \"normal\"\n",
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let c = Config::load(Some(&file), env(&[]), &Overrides::default())
            .unwrap_or_else(|err| panic!("{err}"));
        assert_eq!(c.redis.url.as_deref(), Some("redis://f"));
        assert_eq!(c.storage.mongodb.max_batch, 9);
        assert_eq!(c.storage.sqlite.readers, 3);
        assert_eq!(c.storage.sqlite.synchronous, Synchronous::Normal);
        // The new names, and the new name winning over the old.
        let e = env(&[
            ("EMOFY_REDIS__URL", "redis://new"),
            ("EMOFY_REDIS_URL", "redis://old"),
            ("EMOFY_STORAGE__SQLITE__CACHE_MIB", "64"),
        ]);
        let c = Config::load(None, e, &Overrides::default()).unwrap_or_else(|err| panic!("{err}"));
        assert_eq!(c.redis.url.as_deref(), Some("redis://new"));
        assert_eq!(c.storage.sqlite.cache_mib, 64);
    }

    #[test]
    fn bad_values_are_reported() {
        let e = env(&[("EMOFY_GAME__CONFIDENCE", "0.4")]);
        assert!(matches!(
            Config::load(None, e, &Overrides::default()),
            Err(ConfigError::Invalid(_))
        ));
        let e = env(&[("EMOFY_NOPE", "1")]);
        assert!(matches!(
            Config::load(None, e, &Overrides::default()),
            Err(ConfigError::Parse { .. })
        ));
        let e = env(&[("EMOFY_PORT", "http")]);
        assert!(Config::load(None, e, &Overrides::default()).is_err());
    }
}
