//! Actors: the round [`coordinator::Coordinator`], one [`session::PlayerSession`]
//! per connection, and the [`inference::InferencePool`] of model workers.

pub mod coordinator;
pub mod inference;
pub mod session;
