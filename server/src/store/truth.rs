//! Truth inference as the stores keep it: how a posterior is stored, the
//! model's reliability key, the periodic full EM pass over a snapshot, and
//! the errors of refused plans. What an answer or a moderation writes is
//! decided in `emofy_game::plan`.

use emofy_game::{Emotion, PlayerId, Reliability};

use super::{StoreError, TruthPass, TruthSnapshot};

/// The id under which the serving model's matrix is stored with the players' reliabilities.
pub const MODEL_KEY: &str = "model";

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

/// The periodic full Dawid–Skene pass (with copy rates and the model as a
/// labeller) over a snapshot: corrects the drift of the online updates,
/// which learn each label once with the belief of that moment. Pure.
pub fn em_pass(snapshot: &TruthSnapshot, iterations: usize) -> TruthPass {
    use emofy_game::truth::{EmLabel, MatrixPrior, em};
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
    let mut labels = Vec::with_capacity(snapshot.labels.len() + snapshot.model_guesses.len());
    for l in &snapshot.labels {
        if reliability.get(&l.player).is_some_and(|r| !r.counts()) {
            continue;
        }
        let p = *player_ix.entry(l.player).or_insert_with(|| {
            players.push(l.player);
            players.len() - 1
        });
        let i = *image_ix.entry(l.image).or_insert_with(|| {
            images.push(l.image);
            images.len() - 1
        });
        labels.push(EmLabel {
            player: p,
            image: i,
            answer: l.emotion,
            shown: l.shown,
        });
    }
    // The model is one more labeller, after the players.
    let model = players.len();
    for (image, guess) in &snapshot.model_guesses {
        if let Some(i) = image_ix.get(image) {
            labels.push(EmLabel {
                player: model,
                image: *i,
                answer: *guess,
                shown: None,
            });
        }
    }
    let gold: Vec<(usize, Emotion)> = snapshot
        .gold
        .iter()
        .filter_map(|(img, g)| image_ix.get(img).map(|i| (*i, *g)))
        .collect();
    let mut copy: Vec<f64> = players
        .iter()
        .map(|p| reliability.get(p).map_or(0.1, |r| r.copy_rate()))
        .collect();
    copy.push(0.0);
    let fit = em(
        players.len() + 1,
        images.len(),
        &labels,
        &gold,
        &copy,
        MatrixPrior::default(),
        iterations,
    );
    let mut matrices = fit.matrices;
    let model_matrix = matrices.pop();
    TruthPass {
        matrices: players.into_iter().zip(matrices).collect(),
        model: model_matrix,
        posteriors: images.into_iter().zip(fit.posteriors).collect(),
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
