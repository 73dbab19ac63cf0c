//! Image selection: which image a player sees next.
//!
//! [`ImagePool`] holds the open images ordered by how few votes they need
//! before the consensus rule can close them ("closest to retirement" first).
//! Selection never offers an image the player has seen, never the player's own
//! upload, and never an image that is not open: closed images are not in the
//! ordering at all.

use std::collections::{BTreeSet, HashMap};

use serde::{Deserialize, Serialize};

use crate::consensus::{ConsensusRule, ImageStatus, VoteCounts};
use crate::ids::{ImageId, PlayerId};

/// What the pool knows of one image.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct PoolEntry {
    pub image: ImageId,
    /// The contributor, for uploaded images.
    pub uploader: Option<PlayerId>,
    pub votes: VoteCounts,
    pub status: ImageStatus,
}

type Key = (u32, u64, ImageId);

/// Open images in selection priority order. Plain data; no I/O.
#[derive(Debug, Clone)]
pub struct ImagePool {
    rule: ConsensusRule,
    entries: HashMap<ImageId, (PoolEntry, Option<Key>)>,
    order: BTreeSet<Key>,
}

impl ImagePool {
    /// An empty pool using `rule` to rank images.
    pub fn new(rule: ConsensusRule) -> Self {
        ImagePool {
            rule,
            entries: HashMap::new(),
            order: BTreeSet::new(),
        }
    }

    /// Inserts or replaces what the pool knows of an image.
    pub fn upsert(&mut self, entry: PoolEntry) {
        self.remove(&entry.image);
        let key = entry.status.is_open().then(|| {
            (
                self.rule.votes_to_close(&entry.votes),
                entry.image.short(),
                entry.image,
            )
        });
        if let Some(k) = key {
            self.order.insert(k);
        }
        self.entries.insert(entry.image, (entry, key));
    }

    /// Forgets an image.
    pub fn remove(&mut self, image: &ImageId) {
        if let Some((_, Some(key))) = self.entries.remove(image) {
            self.order.remove(&key);
        }
    }

    /// What the pool knows of `image`.
    pub fn get(&self, image: &ImageId) -> Option<&PoolEntry> {
        self.entries.get(image).map(|(e, _)| e)
    }

    /// Number of images known (any status).
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Number of open images.
    pub fn open_len(&self) -> usize {
        self.order.len()
    }

    /// Picks the next image for `player`: among the eligible images (open, not
    /// seen, not uploaded by the player) those closest to retirement; among
    /// equally close ones, up to `spread` candidates are considered and `pick`
    /// (any number, e.g. random) chooses one, so that players spread out.
    pub fn select(
        &self,
        player: PlayerId,
        seen: impl Fn(&ImageId) -> bool,
        spread: usize,
        pick: u64,
    ) -> Option<ImageId> {
        let spread = spread.max(1);
        let mut best: Option<u32> = None;
        let mut chosen: Vec<ImageId> = Vec::with_capacity(spread.min(16));
        for (distance, _, image) in &self.order {
            if best.is_some_and(|d| *distance > d) || chosen.len() >= spread {
                break;
            }
            let Some((entry, _)) = self.entries.get(image) else {
                continue;
            };
            if entry.uploader == Some(player) || seen(image) {
                continue;
            }
            best = Some(*distance);
            chosen.push(*image);
        }
        if chosen.is_empty() {
            return None;
        }
        let idx = usize::try_from(pick % chosen.len() as u64).unwrap_or(0);
        chosen.get(idx).copied()
    }

    /// Votes still needed to close `image` (None if unknown or not open).
    pub fn votes_to_close(&self, image: &ImageId) -> Option<u32> {
        self.entries.get(image).and_then(|(_, k)| k.map(|k| k.0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::emotion::Emotion;
    use std::collections::HashSet;
    use uuid::Uuid;

    fn img(n: u8) -> ImageId {
        ImageId::from_digest([n; 32])
    }

    fn entry(n: u8, votes: u32) -> PoolEntry {
        let mut v = VoteCounts::default();
        v.0[Emotion::Happy.index()] = votes;
        PoolEntry {
            image: img(n),
            uploader: None,
            votes: v,
            status: ImageStatus::Open,
        }
    }

    #[test]
    fn prefers_images_closest_to_retirement() {
        let mut pool = ImagePool::new(ConsensusRule::default());
        pool.upsert(entry(1, 0));
        pool.upsert(entry(2, 2));
        pool.upsert(entry(3, 1));
        let p = PlayerId(Uuid::from_u128(9));
        assert_eq!(pool.select(p, |_| false, 1, 0), Some(img(2)));
        let seen: HashSet<_> = [img(2)].into();
        assert_eq!(pool.select(p, |i| seen.contains(i), 1, 0), Some(img(3)));
    }

    #[test]
    fn skips_own_uploads_and_closed_images() {
        let mut pool = ImagePool::new(ConsensusRule::default());
        let p = PlayerId(Uuid::from_u128(9));
        let mut own = entry(1, 2);
        own.uploader = Some(p);
        pool.upsert(own);
        let mut retired = entry(2, 2);
        retired.status = ImageStatus::Retired {
            label: Emotion::Happy,
        };
        pool.upsert(retired);
        assert_eq!(pool.select(p, |_| false, 4, 0), None);
        pool.upsert(entry(3, 0));
        assert_eq!(pool.select(p, |_| false, 4, 0), Some(img(3)));
        assert_eq!(pool.open_len(), 2);
        pool.remove(&img(1));
        assert_eq!(pool.open_len(), 1);
        assert_eq!(pool.len(), 2);
    }

    #[test]
    fn spread_picks_among_equally_close_images_only() {
        let mut pool = ImagePool::new(ConsensusRule::default());
        for n in 1..=5 {
            pool.upsert(entry(n, 0));
        }
        pool.upsert(entry(9, 2));
        let p = PlayerId(Uuid::from_u128(1));
        for pick in 0..10 {
            assert_eq!(pool.select(p, |_| false, 3, pick), Some(img(9)));
        }
        let picked: HashSet<_> = (0..10)
            .filter_map(|k| pool.select(p, |i| *i == img(9), 3, k))
            .collect();
        assert_eq!(picked.len(), 3);
    }
}
