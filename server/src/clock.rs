//! Time as [`Millis`].
//!
//! [`Clock`] reads wall time once at start-up and advances it with tokio's
//! monotonic clock, so round deadlines follow tokio time: tests that pause
//! time (`tokio::time::pause`) move game time too.

use std::time::{SystemTime, UNIX_EPOCH};

use emofy_game::Millis;

/// Milliseconds since the Unix epoch from the system clock (0 before 1970).
pub fn now() -> Millis {
    Millis(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
            .unwrap_or(0),
    )
}

/// Game clock: wall time at creation plus tokio-monotonic elapsed time.
#[derive(Debug, Clone, Copy)]
pub struct Clock {
    wall: Millis,
    start: tokio::time::Instant,
}

impl Clock {
    pub fn new() -> Clock {
        Clock {
            wall: now(),
            start: tokio::time::Instant::now(),
        }
    }

    pub fn now(&self) -> Millis {
        let elapsed = u64::try_from(self.start.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.wall.plus(elapsed)
    }
}

impl Default for Clock {
    fn default() -> Self {
        Clock::new()
    }
}
