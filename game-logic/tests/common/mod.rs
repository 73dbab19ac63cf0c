//! Crowds with known truth for the truth tests (shared by `crowd.rs` and
//! `replay.rs`).
#![allow(dead_code)]

use emofy_game::crowd::Label;

/// A deterministic pseudo-random stream (xorshift).
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> f64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 >> 11) as f64 / (1u64 << 53) as f64
    }

    pub fn class(&mut self, shares: &[f64]) -> u8 {
        let mut x = self.next();
        for (c, s) in shares.iter().enumerate() {
            if x < *s {
                return c as u8;
            }
            x -= s;
        }
        (shares.len() - 1) as u8
    }
}

/// Honest workers who are right with probability `acc` (otherwise a
/// uniformly random wrong class), on tasks drawn from `shares`.
pub fn honest_crowd(
    rng: &mut Rng,
    shares: &[f64],
    tasks: usize,
    workers: usize,
    per_task: usize,
    acc: f64,
) -> (Vec<u8>, Vec<Label>) {
    let k = shares.len();
    let truth: Vec<u8> = (0..tasks).map(|_| rng.class(shares)).collect();
    let mut labels = Vec::new();
    for (t, c) in truth.iter().enumerate() {
        for j in 0..per_task {
            let worker = ((t * 7 + j * 13) % workers) as u32;
            let answer = if rng.next() < acc {
                *c
            } else {
                let wrong = (rng.next() * (k - 1) as f64) as u8;
                if wrong >= *c { wrong + 1 } else { wrong }
            };
            labels.push(Label {
                task: t as u32,
                worker,
                class: answer.min(k as u8 - 1),
            });
        }
    }
    (truth, labels)
}

/// 600 tasks, 90% of them class 0, 20 honest workers 90% right: they answer
/// class 0 about 90% of the time, and none may be flagged for it.
pub fn skewed_honest_pool() -> (Vec<u8>, Vec<Label>) {
    honest_crowd(&mut Rng(7), &[0.9, 0.05, 0.05], 600, 20, 5, 0.9)
}

/// The first of the bots in [`balanced_pool_with_button_bots`].
pub const FIRST_BOT: usize = 16;

/// 16 honest workers (80% right) on a balanced 4-class pool of 400 tasks,
/// and workers 16, 17 and 18: bots pressing one button each (120 labels
/// apiece).
pub fn balanced_pool_with_button_bots() -> (Vec<u8>, Vec<Label>) {
    let (truth, mut labels) = honest_crowd(&mut Rng(11), &[0.25; 4], 400, 16, 4, 0.8);
    for bot in 0..3u32 {
        for t in 0..120u32 {
            labels.push(Label {
                task: t * 3 + bot,
                worker: FIRST_BOT as u32 + bot,
                class: bot as u8,
            });
        }
    }
    (truth, labels)
}
