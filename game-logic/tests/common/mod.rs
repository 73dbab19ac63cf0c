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
