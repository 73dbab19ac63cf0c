//! Truth inference as the stores keep it: how a posterior is stored, the
//! model's reliability key, the periodic full EM pass over a snapshot, and
//! the errors of refused plans. What an answer or a moderation writes is
//! decided in `emofy_game::plan`.

use emofy_game::{CrowdPrior, Emotion, PlayerId, Reliability, TrustRules};

use super::{StoreError, TruthPass, TruthSnapshot};

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

/// The periodic full Dawid–Skene pass (with copy rates, the model as a
/// labeller, newcomers' weights and the labels images came with) over a
/// snapshot: corrects the drift of the online updates, which learn each
/// label once with the belief of that moment, and learns the crowd's class
/// prior and pooled matrix for the answers until the next pass. The
/// matrices' pull towards the pooled one is chosen on held-out labels by
/// the K-class core ([`emofy_game::crowd::choose_strength`]). Pure.
pub fn em_pass(snapshot: &TruthSnapshot, trust: &TrustRules, iterations: usize) -> TruthPass {
    use emofy_game::crowd;
    use emofy_game::truth::{EmLabel, em};
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
    let start = snapshot.crowd.clone().unwrap_or_default();
    let mut labels = Vec::with_capacity(snapshot.labels.len() + snapshot.model_guesses.len());
    for l in &snapshot.labels {
        let r = reliability.get(&l.player);
        if r.is_some_and(|r| !r.counts()) {
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
            weight: r.map_or(trust.newcomer_weight, |r| r.weight(trust)),
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
                weight: 1.0,
            });
        }
    }
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
    let mut copy: Vec<f64> = players
        .iter()
        .map(|p| reliability.get(p).map_or(0.1, |r| r.copy_rate()))
        .collect();
    copy.push(0.0);
    // How far matrices are pulled towards the crowd: measured on these labels.
    let core: Vec<crowd::Label> = labels
        .iter()
        .map(|l| crowd::Label {
            task: u32::try_from(l.image).unwrap_or(u32::MAX),
            worker: u32::try_from(l.player).unwrap_or(u32::MAX),
            class: l.answer.index() as u8,
        })
        .collect();
    let core_gold: Vec<(u32, u8)> = gold
        .iter()
        .map(|(i, g)| (u32::try_from(*i).unwrap_or(u32::MAX), g.index() as u8))
        .collect();
    let strength = crowd::choose_strength(
        emofy_game::EMOTION_COUNT,
        images.len(),
        players.len() + 1,
        &core,
        &core_gold,
        &crowd::Priors::default(),
    )
    .map_or(start.strength, |(s, _)| s);
    let start = CrowdPrior { strength, ..start };
    let fit = em(
        players.len() + 1,
        images.len(),
        &labels,
        &gold,
        &known,
        &copy,
        &start,
        iterations,
    );
    let mut matrices = fit.matrices;
    let model_matrix = matrices.pop();
    TruthPass {
        matrices: players.into_iter().zip(matrices).collect(),
        model: model_matrix,
        posteriors: images.into_iter().zip(fit.posteriors).collect(),
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
