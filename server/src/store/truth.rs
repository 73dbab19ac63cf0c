//! Truth inference as the stores keep it: how a posterior is stored, the
//! model's reliability key, the periodic full EM pass over a snapshot, and
//! the errors of refused plans. What an answer or a moderation writes is
//! decided in `emofy_game::plan`.

use emofy_game::{CrowdPrior, Emotion, PlayerId, Reliability, TrustRules};

use super::{Rejudge, StoreError, TruthPass, TruthSnapshot};

/// The id under which the serving model's matrix is stored with the players' reliabilities.
pub const MODEL_KEY: &str = "model";

/// The id under which the truth pass keeps what it learned about the crowd
/// ([`CrowdPrior`]) with the reliabilities.
pub const CROWD_KEY: &str = "crowd";

/// Whether a reliability row is a player's (not the model's or the crowd's).
pub fn is_player_key(id: &str) -> bool {
    id != MODEL_KEY && id != CROWD_KEY
}

/// The crowd prior as stored.
pub fn crowd_json(c: &CrowdPrior) -> String {
    serde_json::to_string(c).unwrap_or_else(|_| "{}".into())
}

/// Reads a stored crowd prior (`None` for malformed: the defaults apply
/// until the next pass writes a good one).
pub fn crowd_from(s: &str) -> Option<CrowdPrior> {
    serde_json::from_str(s).ok()
}

/// The posterior as stored: seven probabilities.
pub fn posterior_json(p: &[f64; 7]) -> String {
    let rounded: Vec<f64> = p.iter().map(|x| (x * 1e6).round() / 1e6).collect();
    serde_json::to_string(&rounded).unwrap_or_else(|_| "null".into())
}

/// Reads a stored posterior (`None` for missing or malformed).
pub fn posterior_from(s: Option<&str>) -> Option<[f64; 7]> {
    let v: Vec<f64> = serde_json::from_str(s?).ok()?;
    <[f64; 7]>::try_from(v).ok()
}

/// The pool's view of a posterior: its top class and probability in thousandths.
pub fn leading(p: Option<[f64; 7]>) -> Option<(Emotion, u16)> {
    let p = p?;
    let (e, x) = emofy_game::truth::map(&p);
    Some((e, (x * 1000.0).round().clamp(0.0, 1000.0) as u16))
}

/// The periodic truth pass over a snapshot: maps the snapshot's ids to
/// indices and runs [`emofy_game::truth::pass`] (batch EM with copy rates,
/// the model as a labeller, newcomers' weights and the labels images came
/// with), which corrects the drift of the online updates and learns the
/// crowd's class prior and pooled matrix for the answers until the next pass.
pub fn em_pass(snapshot: &TruthSnapshot, trust: &TrustRules, iterations: usize) -> TruthPass {
    use emofy_game::truth::{PassLabel, Rejudged, pass, rejudged};
    use std::collections::HashMap;
    let mut players: Vec<PlayerId> = Vec::new();
    let mut player_ix: HashMap<PlayerId, usize> = HashMap::new();
    let mut images: Vec<emofy_game::ImageId> = Vec::new();
    let mut image_ix: HashMap<emofy_game::ImageId, usize> = HashMap::new();
    let reliability: HashMap<PlayerId, &Reliability> = snapshot
        .reliabilities
        .iter()
        .map(|(p, r)| (*p, r))
        .collect();
    let mut labels = Vec::with_capacity(snapshot.labels.len());
    let mut seen: HashMap<emofy_game::ImageId, u32> = HashMap::new();
    for l in &snapshot.labels {
        *seen.entry(l.image).or_default() += 1;
        let p = *player_ix.entry(l.player).or_insert_with(|| {
            players.push(l.player);
            players.len() - 1
        });
        let i = *image_ix.entry(l.image).or_insert_with(|| {
            images.push(l.image);
            images.len() - 1
        });
        labels.push(PassLabel {
            player: p,
            image: i,
            answer: l.emotion,
            shown: l.shown,
        });
    }
    let records: Vec<Option<&Reliability>> = players
        .iter()
        .map(|p| reliability.get(p).copied())
        .collect();
    let guesses: Vec<(usize, Emotion)> = snapshot
        .model_guesses
        .iter()
        .filter_map(|(img, g)| image_ix.get(img).map(|i| (*i, *g)))
        .collect();
    let gold: Vec<(usize, Emotion)> = snapshot
        .gold
        .iter()
        .filter_map(|(img, g)| image_ix.get(img).map(|i| (*i, *g)))
        .collect();
    let known: Vec<(usize, Emotion, f64)> = snapshot
        .known
        .iter()
        .filter(|_| trust.known_labels)
        .filter_map(|(img, k)| {
            image_ix
                .get(img)
                .map(|i| (*i, k.label, trust.trust_of(k.source)))
        })
        .collect();
    let start: CrowdPrior = snapshot.crowd.clone().unwrap_or_default();
    let fit = pass(
        &records,
        images.len(),
        &labels,
        &guesses,
        &gold,
        &known,
        &start,
        trust,
        iterations,
    );
    // Closed images are re-judged only when the window holds all their labels.
    let closed: HashMap<emofy_game::ImageId, (emofy_game::ImageStatus, u32)> = snapshot
        .closed
        .iter()
        .map(|(i, s, n)| (*i, (*s, *n)))
        .collect();
    let mut posteriors = Vec::new();
    let mut rejudge = Vec::new();
    for (image, p) in images.into_iter().zip(fit.posteriors) {
        let Some(p) = p else { continue };
        let Some((was, total)) = closed.get(&image).copied() else {
            posteriors.push((image, p));
            continue;
        };
        let complete = seen.get(&image).copied().unwrap_or(0) >= total;
        let now = match rejudged(was, &p, complete) {
            Rejudged::Keep => continue,
            Rejudged::Posterior => was,
            Rejudged::Dispute { .. } => emofy_game::ImageStatus::Disputed,
        };
        rejudge.push(Rejudge {
            image,
            was,
            now,
            posterior: p,
        });
    }
    TruthPass {
        matrices: players
            .into_iter()
            .zip(fit.matrices)
            .filter_map(|(p, m)| m.map(|m| (p, m)))
            .collect(),
        model: fit.model,
        posteriors,
        rejudged: rejudge,
        crowd: fit.crowd,
    }
}

/// The store error for a refused moderation.
pub fn moderation_refusal(r: emofy_game::plan::ModerationRefusal) -> StoreError {
    match r {
        emofy_game::plan::ModerationRefusal::Removed => {
            StoreError::Conflict("the image is out of play".into())
        }
        emofy_game::plan::ModerationRefusal::Unlabelled => {
            StoreError::Conflict("nobody has labelled the image yet".into())
        }
    }
}
