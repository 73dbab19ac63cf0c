//! Sign-in abuse limits for one account: a soft lockout with exponential
//! backoff (OWASP ASVS 5.0 V6.3: at most 100 failed attempts per hour per
//! account, and no lasting lockout an attacker can impose on its owner).
//!
//! The first `free_failures` wrong passwords cost nothing; from then on the
//! next attempt must wait `base_delay_ms · 2^(n − free_failures)` after the
//! last failure (n = failures so far), at most `max_delay_ms`. Every
//! attempt inside the wait, the right password included, is refused without
//! checking it (and does not count). A success, or `forget_after_ms` without
//! a failure, clears the count. With the defaults (5 free, 1 s doubling to
//! 5 minutes, forgotten after an hour) an attacker who tries as often as
//! allowed gets 5 + 9 + 10 = 24 guesses in the first hour
//! ([`LoginRules::attempts_per_hour`]), and the owner is never locked out
//! for longer than 5 minutes after the attacker stops.

use serde::{Deserialize, Serialize};

use crate::ids::Millis;

/// The limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LoginRules {
    pub free_failures: u32,
    pub base_delay_ms: u64,
    pub max_delay_ms: u64,
    pub forget_after_ms: u64,
}

impl Default for LoginRules {
    fn default() -> Self {
        LoginRules {
            free_failures: 5,
            base_delay_ms: 1_000,
            max_delay_ms: 300_000,
            forget_after_ms: 3_600_000,
        }
    }
}

/// An account's failed sign-ins as stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LoginFailures {
    /// Failures since the last success (or since they were forgotten).
    pub count: u32,
    /// When the last one was.
    pub last: Millis,
}

impl Default for LoginFailures {
    fn default() -> Self {
        LoginFailures {
            count: 0,
            last: Millis(0),
        }
    }
}

/// Whether an attempt is checked now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoginGate {
    /// Check the password.
    Check,
    /// Refuse without checking: try again in this many milliseconds.
    Wait { retry_after_ms: u64 },
}

impl LoginRules {
    /// The wait after `count` failures (0 before the free ones are spent).
    pub fn delay_after(&self, count: u32) -> u64 {
        if count < self.free_failures.max(1) {
            return 0;
        }
        let doublings = (count - self.free_failures.max(1)).min(62);
        self.base_delay_ms
            .saturating_mul(1u64 << doublings)
            .min(self.max_delay_ms)
    }

    /// The failures that still count at `now`.
    fn current(&self, f: LoginFailures, now: Millis) -> LoginFailures {
        if f.count > 0 && now.since(f.last) >= self.forget_after_ms {
            LoginFailures::default()
        } else {
            f
        }
    }

    /// Whether an attempt at `now` is checked.
    pub fn gate(&self, f: LoginFailures, now: Millis) -> LoginGate {
        let f = self.current(f, now);
        let open_at = f.last.plus(self.delay_after(f.count));
        if f.count > 0 && now < open_at {
            LoginGate::Wait {
                retry_after_ms: open_at.since(now),
            }
        } else {
            LoginGate::Check
        }
    }

    /// The record after a checked attempt that failed at `now`.
    pub fn failed(&self, f: LoginFailures, now: Millis) -> LoginFailures {
        let f = self.current(f, now);
        LoginFailures {
            count: f.count.saturating_add(1),
            last: now,
        }
    }

    /// The most checked attempts an attacker gets in one hour from a fresh
    /// record, trying the moment each wait ends (every one failing).
    pub fn attempts_per_hour(&self) -> u32 {
        let hour = Millis(3_600_000);
        let (mut f, mut now, mut n) = (LoginFailures::default(), Millis(0), 0u32);
        while now < hour && n < 100_000 {
            match self.gate(f, now) {
                LoginGate::Check => {
                    f = self.failed(f, now);
                    n += 1;
                }
                LoginGate::Wait { retry_after_ms } => now = now.plus(retry_after_ms.max(1)),
            }
        }
        n
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn free_failures_then_a_doubling_wait_that_refuses_even_the_right_password() {
        let r = LoginRules::default();
        let mut f = LoginFailures::default();
        for i in 0..5 {
            assert_eq!(r.gate(f, Millis(i)), LoginGate::Check);
            f = r.failed(f, Millis(i));
        }
        assert_eq!(
            r.gate(f, Millis(4)),
            LoginGate::Wait {
                retry_after_ms: 1_000
            }
        );
        assert_eq!(r.gate(f, Millis(1_004)), LoginGate::Check);
        f = r.failed(f, Millis(1_004));
        assert_eq!(
            r.gate(f, Millis(1_005)),
            LoginGate::Wait {
                retry_after_ms: 1_999
            }
        );
        assert_eq!(r.delay_after(4), 0);
        assert_eq!(r.delay_after(5), 1_000);
        assert_eq!(r.delay_after(8), 8_000);
        assert_eq!(r.delay_after(40), 300_000);
        assert_eq!(r.delay_after(u32::MAX), 300_000);
        // Forgotten after an hour without failures.
        assert_eq!(r.gate(f, Millis(1_004 + 3_600_000)), LoginGate::Check);
        assert_eq!(r.failed(f, Millis(1_004 + 3_600_000)).count, 1);
    }

    #[test]
    fn an_attacker_gets_at_most_100_guesses_an_hour_and_the_owner_waits_at_most_the_cap() {
        let r = LoginRules::default();
        assert_eq!(r.attempts_per_hour(), 24);
        assert!(r.attempts_per_hour() <= 100);
        // However many failures: the owner can try again within the cap.
        let f = LoginFailures {
            count: 10_000,
            last: Millis(1_000),
        };
        assert_eq!(
            r.gate(f, Millis(1_000)),
            LoginGate::Wait {
                retry_after_ms: 300_000
            }
        );
        assert_eq!(r.gate(f, Millis(301_000)), LoginGate::Check);
    }
}
