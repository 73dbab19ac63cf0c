//! Actors: the round [`coordinator::Coordinator`], one [`session::PlayerSession`]
//! per connection, and the [`inference::InferencePool`] of model workers;
//! the live leaderboard [`hub::LeaderboardHub`] and one [`viewer::BoardViewer`]
//! per leaderboard connection.

pub mod coordinator;
pub mod hub;
pub mod inference;
pub mod session;
pub mod truth;
pub mod viewer;
