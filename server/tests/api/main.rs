//! The integration tests: one binary (one link), one module per area, all
//! sharing `common` (spawn the real app on port 0, drive it with real clients).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod aggregate;
mod answer_cost;
mod auth_matrix;
mod bad_input;
mod common;
mod erasure;
mod export;
mod fixtures;
mod game;
mod hardening;
mod history;
mod hub;
mod image_bombs;
mod import;
mod inference_pool;
mod leaderboard;
mod login;
mod model_loop;
mod mongo_app;
mod newcomers;
mod predict;
mod process;
mod registry_contract;
mod replicas;
mod review_queue;
mod standing;
mod store_contract;
mod trainer;
mod training;
mod truth;
mod uploads;
