//! # emofy-server — the Emofy game server
//!
//! Players connect over WebSocket and play timed rounds: they see a face and
//! the model's guess and pick the right emotion. The pure rules live in
//! `emofy-game`; this crate is the adapters around them.
//!
//! | module | what it holds |
//! | --- | --- |
//! | [`app`] | `Application::build(config)`: opens stores, starts actors, binds HTTP; graceful shutdown |
//! | [`actors`] | the round `Coordinator` and one `PlayerSession` actor per WebSocket connection |
//! | [`http`] | routes: `/ws/play`, `/images/{sha256}`, `/api/*`, `/healthz`, `/readyz`, `/metrics`, the web client |
//! | [`protocol`] | protocol v1 messages (JSON, `type`-tagged) |
//! | [`error`] | stable error codes sent to clients |
//! | [`store`] | storage traits and the embedded SQLite implementation |
//! | [`leaderboard`] | the in-process leaderboard and the outage buffer |
//! | [`redis_board`] | the Redis leaderboard shared by replicas, and its pub/sub events |
//! | [`auth`] | signed session tokens, argon2 password hashes |
//! | [`config`] | the typed, layered configuration |
//! | [`demo_faces`] | the deterministic synthetic face generator for the demo pool |
//! | [`import`] | `emofy import`: image folders and FER2013 CSV |
//! | [`export`] | `emofy export` (JSONL with soft labels, FER2013 CSV, ImageFolder) and its import |
//! | [`history`] | label history: a player's own (paged), an image's (moderators) |
//! | [`uploads`] | contributed photos: consent, face crop, the contributor's label, list, delete |
//! | [`model_admin`] | swapping the serving model version while running |
//! | [`metrics`], [`telemetry`] | Prometheus metrics and `tracing` output |
//! | [`clock`] | game time (follows tokio time, so tests can pause it) |

pub mod actors;
pub mod app;
pub mod auth;
pub mod clock;
pub mod config;
pub mod demo_faces;
pub mod error;
pub mod export;
pub mod filters;
pub mod history;
pub mod http;
pub mod import;
pub mod leaderboard;
pub mod metrics;
pub mod model_admin;
pub mod moderation;
pub mod protocol;
pub mod redis_board;
pub mod store;
pub mod telemetry;
pub mod uploads;

pub use app::{Application, ShutdownHandle};
pub use config::Config;
