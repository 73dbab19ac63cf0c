//! Actors: the round [`coordinator::Coordinator`] and one [`session::PlayerSession`] per connection.

pub mod coordinator;
pub mod session;
