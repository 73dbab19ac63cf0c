//! # emofy-server — the Emofy game server
//!
//! Players connect over WebSocket and play timed rounds: they see a face and
//! the model's guess and pick the right emotion. The pure rules live in
//! `emofy-game`; this crate is the adapters around them.
//!
//! | module | what it holds |
//! | --- | --- |
//! | [`app`] | `Application::build(config)`: opens stores ([`app::stores`]), starts actors, binds HTTP; graceful shutdown |
//! | [`actors`] | the round `Coordinator`, one `PlayerSession` per play socket, the board hub and viewers, the inference pool, the truth pass |
//! | [`web`] | HTTP: routes per resource, the error contract, auth extractors, request hygiene, the OpenAPI document |
//! | [`service`] | the handles every entry point works through (`Services`), what follows an answer or a score change, the model's guesses for the pool, the moderators' review queue |
//! | [`imaging`] | photo face crops, photo filters, the shared image slots |
//! | [`net`] | who a client is (address, trusted proxies, IP networks) and per-address limits |
//! | [`protocol`] | protocol v1 messages (JSON, `type`-tagged) |
//! | [`error`] | stable error codes sent to clients |
//! | [`store`] | storage traits; the embedded SQLite and the MongoDB stores, each loading what an `emofy_game::plan` reads and applying it; SQLite → MongoDB migration |
//! | [`leaderboard`] | the in-process board, the outage buffer, the Redis board shared by replicas |
//! | [`auth`] | signed session tokens, argon2 password hashes |
//! | [`config`] | the typed, layered configuration |
//! | [`dataset`] | `emofy import` (image folders, FER2013 CSV), `emofy export` (JSONL with soft labels, FER2013 CSV, ImageFolder) and its import, the synthetic demo faces |
//! | [`metrics`], [`telemetry`] | Prometheus metrics and `tracing` output |
//! | [`clock`] | game time (follows tokio time, so tests can pause it) |

pub mod actors;
pub mod app;
pub mod auth;
pub mod clock;
pub mod config;
pub mod dataset;
pub mod error;
pub mod imaging;
pub mod leaderboard;
pub mod metrics;
pub mod net;
pub mod protocol;
pub mod service;
pub mod store;
pub mod telemetry;
pub mod training;
pub mod web;

pub use app::{Application, ShutdownHandle};
pub use config::Config;
