//! The truth-inference part of the answer transaction, shared by every
//! store: what the answer does to the image's posterior and status, to the
//! player's reliability and to the model's matrix, and who settles. Stores
//! load the inputs and write the outputs inside their own transaction, so
//! every replica sees one posterior and an image retires once.

use emofy_game::truth::{Confusion, Evidence, LabelFact, MODEL_PRIOR, judge};
use emofy_game::{
    Emotion, ImageStatus, Judgement, PlayerId, Reliability, SettlementLabel, Transition, VoteCounts,
};

use super::{AnswerRecord, GameRules, ImageAction, StoreError, TruthPass, TruthSnapshot};

/// The id under which the serving model's matrix is stored with the players' reliabilities.
pub const MODEL_KEY: &str = "model";

/// A label already on the image, with its player's current reliability.
#[derive(Debug, Clone)]
pub struct EarlierLabel {
    pub player: PlayerId,
    pub answer: Emotion,
    pub shown: Option<Emotion>,
    pub decoy: bool,
    pub reliability: Reliability,
}

/// What a store loads for one answer.
#[derive(Debug, Clone)]
pub struct TruthInputs {
    pub status: ImageStatus,
    pub votes: VoteCounts,
    /// The image's verified label (a gold image).
    pub gold: Option<Emotion>,
    /// The model's guess for the image (stored with the image, or this answer's).
    pub model_guess: Option<Emotion>,
    pub model: Option<Confusion>,
    pub earlier: Vec<EarlierLabel>,
    /// The answering player's reliability before this answer.
    pub me: Option<Reliability>,
}

/// What a store writes back.
#[derive(Debug, Clone)]
pub struct TruthOutputs {
    pub judgement: Judgement,
    /// The image's verified label, on a gold round.
    pub gold: Option<Emotion>,
    /// The votes the immediate award compares with (the gold label on gold images).
    pub award_prior: VoteCounts,
    pub votes: VoteCounts,
    pub me: Reliability,
    /// The model's matrix, when this answer closed the image.
    pub model: Option<Confusion>,
    /// Labels that settle if the image retired (counted players only; decoy
    /// rounds carry no correction bonus, their suggestion was not the model's).
    pub settlement: Vec<SettlementLabel>,
}

/// Runs the truth step for `a` over `input`.
pub fn answer_step(input: TruthInputs, a: &AnswerRecord, rules: &GameRules) -> TruthOutputs {
    let me = input.me.unwrap_or_default();
    let award_prior = match input.gold {
        Some(g) => VoteCounts::default().with_vote(g),
        None => input.votes,
    };
    let votes = input.votes.with_vote(a.emotion);
    let model = input.model.unwrap_or_else(|| Confusion::new(MODEL_PRIOR));
    let judgement = {
        let mut ev: Vec<Evidence<'_>> = input
            .earlier
            .iter()
            .filter(|l| l.player != a.player)
            .map(|l| Evidence {
                reliability: &l.reliability,
                answer: l.answer,
                shown: l.shown,
            })
            .collect();
        ev.push(Evidence {
            reliability: &me,
            answer: a.emotion,
            shown: a.shown,
        });
        judge(
            &rules.consensus,
            input.status,
            input.gold,
            input.model_guess.map(|g| (&model, g)),
            &ev,
        )
    };
    let mut learned = me.clone();
    learned.learn(
        &LabelFact {
            answer: a.emotion,
            shown: a.shown,
            decoy: a.decoy,
            gold: input.gold,
            response_ms: a.response_ms,
        },
        &judgement.posterior,
        &rules.spam,
    );
    let closed = judgement.transition != Transition::None;
    let model = match (closed, input.model_guess) {
        (true, Some(g)) => {
            let mut m = model;
            m.observe(&judgement.posterior, g);
            Some(m)
        }
        _ => None,
    };
    let mut settlement = Vec::new();
    if let Transition::Retired { .. } = judgement.transition {
        let others: Vec<EarlierLabel> = input
            .earlier
            .into_iter()
            .filter(|l| l.player != a.player)
            .collect();
        settlement = settlement_of(&others);
        if me.counts() {
            settlement.push(SettlementLabel {
                player: a.player,
                answer: a.emotion,
                shown: if a.decoy { None } else { a.shown },
            });
        }
    }
    TruthOutputs {
        judgement,
        gold: input.gold,
        award_prior,
        votes,
        me: learned,
        model,
        settlement,
    }
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

/// The labels that settle when an image retires: those of players whose
/// labels count; decoy rounds carry no correction bonus (their suggestion
/// was not the model's guess).
pub fn settlement_of(labels: &[EarlierLabel]) -> Vec<SettlementLabel> {
    labels
        .iter()
        .filter(|l| l.reliability.counts())
        .map(|l| SettlementLabel {
            player: l.player,
            answer: l.answer,
            shown: if l.decoy { None } else { l.shown },
        })
        .collect()
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

/// What a moderator's action does to an image: its new status, its verified
/// label, and the audit detail. Shared by every store; `Conflict` for an
/// image out of play, or an accept with nothing to accept.
pub fn plan_moderation(
    action: &ImageAction,
    before: ImageStatus,
    posterior: Option<[f64; 7]>,
    previous_gold: Option<Emotion>,
) -> Result<(ImageStatus, Option<Emotion>, serde_json::Value), StoreError> {
    if before == ImageStatus::Removed {
        return Err(StoreError::Conflict("the image is out of play".into()));
    }
    let crowd = posterior.map(|p| emofy_game::truth::map(&p).0);
    let (after, gold, mut detail) = match action {
        ImageAction::Accept => {
            let label = crowd
                .ok_or_else(|| StoreError::Conflict("nobody has labelled the image yet".into()))?;
            (
                ImageStatus::Retired { label },
                Some(label),
                serde_json::json!({"label": label, "before": before.name()}),
            )
        }
        ImageAction::Override { label } => (
            ImageStatus::Retired { label: *label },
            Some(*label),
            serde_json::json!({"label": label, "before": before.name(), "crowd": crowd}),
        ),
        ImageAction::Flag { reason } => (
            ImageStatus::Removed,
            None,
            serde_json::json!({"reason": reason, "before": before.name()}),
        ),
    };
    if let Some(g) = previous_gold {
        detail["previous_gold"] = serde_json::json!(g);
    }
    Ok((after, gold, detail))
}
