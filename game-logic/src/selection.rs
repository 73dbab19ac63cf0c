//! Image selection: which image a player sees next.
//!
//! [`ImagePool`] holds the open images ordered by how much the next label
//! is worth: first images that are already confident but lack the minimum
//! number of labels (one more label can retire them), then the least certain
//! posterior first, with images where the crowd's leading class contradicts
//! the model's guess before others (a label there settles a disagreement). A share of picks explores: it starts at a random
//! place in the order instead of the top. Selection never offers an image
//! the player has seen, never the player's own upload, and never an image
//! that is not open: closed images are not in the ordering at all.
//!
//! The pool also keeps the images the crowd has settled beyond doubt
//! ([`SettledChecks`]): retired with a confident fitted consensus and enough
//! votes. They check new players in gold rounds where no moderator has
//! verified a face yet (an uploads-only deployment has no other gold), so
//! a newcomer's first rounds are scored against a known answer and their
//! labels earn (or lose) trust from the start.

use std::collections::{BTreeSet, HashMap};

use serde::{Deserialize, Serialize};

use crate::consensus::{ConsensusRule, ImageStatus, VoteCounts};
use crate::emotion::Emotion;
use crate::ids::{ImageId, PlayerId};

/// What the pool knows of one image.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct PoolEntry {
    pub image: ImageId,
    /// The contributor, for uploaded images.
    pub uploader: Option<PlayerId>,
    pub votes: VoteCounts,
    pub status: ImageStatus,
    /// The posterior's top class and its probability in thousandths
    /// (`None` before any counted label).
    pub leading: Option<(Emotion, u16)>,
    /// The model's guess, when known.
    pub model_guess: Option<Emotion>,
}

impl PoolEntry {
    /// An open image nobody has labelled yet.
    pub fn fresh(image: ImageId, uploader: Option<PlayerId>) -> PoolEntry {
        PoolEntry {
            image,
            uploader,
            votes: VoteCounts::default(),
            status: ImageStatus::Open,
            leading: None,
            model_guess: None,
        }
    }

    /// Lower is offered sooner: 0 for a confident image short of
    /// `min_labels`; otherwise the certainty of the posterior in thousandths,
    /// less 200 when the crowd's leading class contradicts the model's guess.
    /// An unlabelled image ranks at 143 (a uniform posterior: the most
    /// uncertain there is), so every image gets a first label before any
    /// uncertain image a further one. Measured in the crowd simulation,
    /// this beats finishing started images first: majority vote gains from
    /// depth-first routing as much as truth inference does.
    pub fn priority(&self, rule: &ConsensusRule) -> u32 {
        match self.leading {
            None => UNLABELLED,
            Some((lead, permille)) => {
                let p = u32::from(permille.min(1000));
                if p >= rule.confidence_permille() && self.votes.total() < rule.min_labels() {
                    return 0;
                }
                if self.model_guess.is_some_and(|g| g != lead) {
                    p.saturating_sub(200)
                } else {
                    p
                }
            }
        }
    }
}

/// When a face the crowd settled may check new players in gold rounds (a
/// "settled check"): it retired, the fitted posterior still puts its
/// retired label on top with at least `min_confidence`, and it holds at
/// least `min_votes` labels. Retirement already needs established players
/// ([`crate::TrustRules::min_established`]), so newcomers alone never make
/// a check; a truth pass that moves the consensus off the label disputes
/// the image, which takes it out of the checks at once.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SettledChecks {
    pub enabled: bool,
    pub min_confidence: f64,
    pub min_votes: u32,
}

impl Default for SettledChecks {
    fn default() -> Self {
        SettledChecks {
            enabled: true,
            min_confidence: 0.95,
            min_votes: 5,
        }
    }
}

impl SettledChecks {
    /// Whether `e` is a settled check.
    pub fn admits(&self, e: &PoolEntry) -> bool {
        let ImageStatus::Retired { label } = e.status else {
            return false;
        };
        let needed = (self.min_confidence.clamp(0.0, 1.0) * 1000.0).ceil() as u16;
        self.enabled
            && e.votes.total() >= self.min_votes
            && e.leading
                .is_some_and(|(lead, p)| lead == label && p >= needed)
    }
}

/// The first of `images` that is `ok`, walking from a place chosen by
/// `pick` (wrapping around): a random draw among the acceptable ones when
/// `pick` is random (gold rounds, settled checks).
pub fn first_from(images: &[ImageId], pick: u64, ok: impl Fn(&ImageId) -> bool) -> Option<ImageId> {
    let n = images.len();
    let start = usize::try_from(pick % n.max(1) as u64).unwrap_or(0);
    (0..n).map(|k| images[(start + k) % n]).find(|i| ok(i))
}

type Key = (u32, u64, ImageId);

/// The priority of an image without labels.
const UNLABELLED: u32 = 143;

/// Open images in selection priority order. Plain data; no I/O.
#[derive(Debug, Clone)]
pub struct ImagePool {
    rule: ConsensusRule,
    checks: SettledChecks,
    entries: HashMap<ImageId, (PoolEntry, Option<Key>)>,
    order: BTreeSet<Key>,
    /// The settled checks (any order; a random index is a fair draw) and
    /// where each one is in it.
    settled: Vec<ImageId>,
    settled_at: HashMap<ImageId, usize>,
}

impl ImagePool {
    /// An empty pool ranking images for `rule`.
    pub fn new(rule: ConsensusRule) -> Self {
        ImagePool::with_checks(
            rule,
            SettledChecks {
                enabled: false,
                ..SettledChecks::default()
            },
        )
    }

    /// An empty pool that also keeps the images `checks` admits.
    pub fn with_checks(rule: ConsensusRule, checks: SettledChecks) -> Self {
        ImagePool {
            rule,
            checks,
            entries: HashMap::new(),
            order: BTreeSet::new(),
            settled: Vec::new(),
            settled_at: HashMap::new(),
        }
    }

    /// Inserts or replaces what the pool knows of an image.
    pub fn upsert(&mut self, entry: PoolEntry) {
        self.remove(&entry.image);
        let key = entry
            .status
            .is_open()
            .then(|| (entry.priority(&self.rule), entry.image.short(), entry.image));
        if let Some(k) = key {
            self.order.insert(k);
        }
        if self.checks.admits(&entry) {
            self.settled_at.insert(entry.image, self.settled.len());
            self.settled.push(entry.image);
        }
        self.entries.insert(entry.image, (entry, key));
    }

    /// Forgets an image.
    pub fn remove(&mut self, image: &ImageId) {
        if let Some((_, Some(key))) = self.entries.remove(image) {
            self.order.remove(&key);
        }
        if let Some(at) = self.settled_at.remove(image) {
            self.settled.swap_remove(at);
            if let Some(moved) = self.settled.get(at) {
                self.settled_at.insert(*moved, at);
            }
        }
    }

    /// Whether `image` may go to `player`: known here, not their own
    /// upload, not seen by them.
    fn offerable(
        &self,
        player: PlayerId,
        seen: &impl Fn(&ImageId) -> bool,
        image: &ImageId,
    ) -> bool {
        self.entries
            .get(image)
            .is_some_and(|(e, _)| e.uploader != Some(player))
            && !seen(image)
    }

    /// Number of settled checks.
    pub fn settled_len(&self) -> usize {
        self.settled.len()
    }

    /// A settled check for `player`'s gold round: one they have not seen
    /// and did not upload, drawn by `pick` (a walk from a random place).
    /// `None` when none is left for them.
    pub fn pick_settled(
        &self,
        player: PlayerId,
        seen: impl Fn(&ImageId) -> bool,
        pick: u64,
    ) -> Option<ImageId> {
        first_from(&self.settled, pick, |image| {
            self.offerable(player, &seen, image)
        })
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
    /// seen, not uploaded by the player) those with the lowest priority value;
    /// among equally ranked ones, up to `spread` candidates are considered and
    /// `pick` (any number, e.g. random) chooses one, so that players spread
    /// out. With `explore`, the walk starts at a place chosen by `pick`
    /// (wrapping around) instead of the top.
    pub fn select(
        &self,
        player: PlayerId,
        seen: impl Fn(&ImageId) -> bool,
        spread: usize,
        pick: u64,
        explore: bool,
    ) -> Option<ImageId> {
        let eligible = |image: &ImageId| self.offerable(player, &seen, image);
        if explore && !self.order.is_empty() {
            let skip = usize::try_from(pick % self.order.len() as u64).unwrap_or(0);
            return self
                .order
                .iter()
                .skip(skip)
                .chain(self.order.iter().take(skip))
                .map(|k| k.2)
                .find(|i| eligible(i));
        }
        let spread = spread.max(1);
        let mut best: Option<u32> = None;
        let mut chosen: Vec<ImageId> = Vec::with_capacity(spread.min(16));
        for (priority, _, image) in &self.order {
            if best.is_some_and(|d| *priority > d) || chosen.len() >= spread {
                break;
            }
            if !eligible(image) {
                continue;
            }
            best = Some(*priority);
            chosen.push(*image);
        }
        if chosen.is_empty() {
            return None;
        }
        let idx = usize::try_from(pick % chosen.len() as u64).unwrap_or(0);
        chosen.get(idx).copied()
    }

    /// The selection priority of an open image (None if unknown or not open).
    pub fn priority(&self, image: &ImageId) -> Option<u32> {
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

    fn entry(n: u8, certainty: u16) -> PoolEntry {
        let mut e = PoolEntry::fresh(img(n), None);
        if certainty > 0 {
            e.leading = Some((Emotion::Happy, certainty));
            e.votes.0[Emotion::Happy.index()] = 3;
        }
        e
    }

    #[test]
    fn prefers_uncertain_images_and_model_disagreement() {
        let mut pool = ImagePool::new(ConsensusRule::default());
        pool.upsert(entry(1, 800));
        pool.upsert(entry(2, 300));
        pool.upsert(entry(3, 500));
        let p = PlayerId(Uuid::from_u128(9));
        assert_eq!(pool.select(p, |_| false, 1, 0, false), Some(img(2)));
        let seen: HashSet<_> = [img(2)].into();
        assert_eq!(
            pool.select(p, |i| seen.contains(i), 1, 0, false),
            Some(img(3))
        );
        // The crowd leads against the model's guess on image 1: it comes first now.
        let mut e = entry(1, 800);
        e.model_guess = Some(Emotion::Sad);
        pool.upsert(e);
        assert_eq!(pool.priority(&img(1)), Some(600));
        e.leading = Some((Emotion::Sad, 800));
        pool.upsert(e);
        assert_eq!(pool.priority(&img(1)), Some(800));
        // An unlabelled image is as uncertain as can be.
        pool.upsert(entry(4, 0));
        assert_eq!(pool.priority(&img(4)), Some(UNLABELLED));
        assert_eq!(pool.select(p, |_| false, 1, 0, false), Some(img(4)));
        // A confident image short of the minimum labels goes first: one label may retire it.
        let mut short = entry(5, 950);
        short.votes = VoteCounts::default().with_vote(Emotion::Happy);
        pool.upsert(short);
        assert_eq!(pool.priority(&img(5)), Some(0));
        assert_eq!(pool.select(p, |_| false, 1, 0, false), Some(img(5)));
    }

    #[test]
    fn exploration_reaches_every_eligible_image() {
        let mut pool = ImagePool::new(ConsensusRule::default());
        for n in 1..=6 {
            pool.upsert(entry(n, 200 + u16::from(n) * 100));
        }
        let p = PlayerId(Uuid::from_u128(9));
        let reached: HashSet<_> = (0..6)
            .filter_map(|k| pool.select(p, |_| false, 1, k, true))
            .collect();
        assert_eq!(reached.len(), 6);
        assert_eq!(pool.select(p, |i| *i != img(3), 1, 0, true), Some(img(3)));
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
        assert_eq!(pool.select(p, |_| false, 4, 0, false), None);
        assert_eq!(pool.select(p, |_| false, 4, 0, true), None);
        pool.upsert(entry(3, 0));
        assert_eq!(pool.select(p, |_| false, 4, 0, false), Some(img(3)));
        assert_eq!(pool.open_len(), 2);
        pool.remove(&img(1));
        assert_eq!(pool.open_len(), 1);
        assert_eq!(pool.len(), 2);
    }

    fn settled(n: u8, label: Emotion, permille: u16, votes: u32) -> PoolEntry {
        let mut e = PoolEntry::fresh(img(n), None);
        e.status = ImageStatus::Retired { label };
        e.leading = Some((label, permille));
        e.votes.0[label.index()] = votes;
        e
    }

    #[test]
    fn settled_checks_are_confident_retired_faces_with_enough_votes() {
        let rules = SettledChecks::default();
        let mut pool = ImagePool::with_checks(ConsensusRule::default(), rules);
        pool.upsert(settled(1, Emotion::Sad, 990, 5));
        pool.upsert(settled(2, Emotion::Sad, 940, 9)); // not confident enough
        pool.upsert(settled(3, Emotion::Sad, 999, 4)); // too few votes
        let mut moved = settled(4, Emotion::Sad, 990, 6); // the fit moved off its label
        moved.leading = Some((Emotion::Fear, 990));
        pool.upsert(moved);
        let mut disputed = settled(5, Emotion::Sad, 990, 6);
        disputed.status = ImageStatus::Disputed;
        pool.upsert(disputed);
        pool.upsert(entry(6, 990)); // open
        assert_eq!(pool.settled_len(), 1);
        let p = PlayerId(Uuid::from_u128(9));
        for pick in [0, 7, u64::MAX] {
            assert_eq!(pool.pick_settled(p, |_| false, pick), Some(img(1)));
        }
        assert_eq!(pool.pick_settled(p, |i| *i == img(1), 0), None);
        // Disputed by a later pass: out of the checks at once.
        let mut now_disputed = settled(1, Emotion::Sad, 990, 5);
        now_disputed.status = ImageStatus::Disputed;
        pool.upsert(now_disputed);
        assert_eq!(pool.settled_len(), 0);
        // Off by default for a plain pool, and when disabled.
        let mut plain = ImagePool::new(ConsensusRule::default());
        plain.upsert(settled(1, Emotion::Sad, 990, 5));
        assert_eq!(plain.settled_len(), 0);
    }

    #[test]
    fn settled_checks_never_offer_own_seen_or_removed_faces() {
        let mut pool = ImagePool::with_checks(ConsensusRule::default(), SettledChecks::default());
        let p = PlayerId(Uuid::from_u128(9));
        let mut own = settled(1, Emotion::Happy, 999, 7);
        own.uploader = Some(p);
        pool.upsert(own);
        pool.upsert(settled(2, Emotion::Happy, 999, 7));
        pool.upsert(settled(3, Emotion::Angry, 999, 7));
        let mut gone = settled(3, Emotion::Angry, 999, 7);
        gone.status = ImageStatus::Removed;
        pool.upsert(gone);
        pool.upsert(settled(4, Emotion::Fear, 999, 7));
        pool.remove(&img(4));
        let reached: HashSet<_> = (0..64u64)
            .filter_map(|k| pool.pick_settled(p, |_| false, k))
            .collect();
        assert_eq!(reached, [img(2)].into());
        // Another player may draw the upload.
        let q = PlayerId(Uuid::from_u128(10));
        let reached: HashSet<_> = (0..64u64)
            .filter_map(|k| pool.pick_settled(q, |_| false, k))
            .collect();
        assert_eq!(reached, [img(1), img(2)].into());
    }

    #[test]
    fn spread_picks_among_equally_close_images_only() {
        let mut pool = ImagePool::new(ConsensusRule::default());
        for n in 1..=5 {
            pool.upsert(entry(n, 500));
        }
        pool.upsert(entry(9, 300));
        let p = PlayerId(Uuid::from_u128(1));
        for pick in 0..10 {
            assert_eq!(pool.select(p, |_| false, 3, pick, false), Some(img(9)));
        }
        let picked: HashSet<_> = (0..10)
            .filter_map(|k| pool.select(p, |i| *i == img(9), 3, k, false))
            .collect();
        assert_eq!(picked.len(), 3);
    }
}
