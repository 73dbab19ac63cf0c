//! Use cases shared by several entry points (the play socket, HTTP handlers):
//! what follows a recorded answer or a score change ([`play`]).

pub mod play;
