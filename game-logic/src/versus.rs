//! "You beat the model": a player's answers against the serving model's
//! guesses on the same faces, judged by what the crowd settled.
//!
//! A face counts when its truth is settled — a moderator verified it, or
//! it retired with a consensus — and the model has a guess for it. Open
//! and disputed faces are left out: nobody knows yet who was right.

use serde::Serialize;

use crate::consensus::ImageStatus;
use crate::emotion::Emotion;

/// One face the player answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Answered {
    pub answer: Emotion,
    /// The serving model's guess for the face, if it has one.
    pub model: Option<Emotion>,
    /// The moderator-verified label, if any.
    pub gold: Option<Emotion>,
    pub status: ImageStatus,
}

impl Answered {
    /// What the face is, as far as anyone will say: the verified label,
    /// else the consensus it retired with.
    pub fn truth(&self) -> Option<Emotion> {
        self.gold.or(match self.status {
            ImageStatus::Retired { label } => Some(label),
            _ => None,
        })
    }
}

/// The comparison, over the faces that count.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize)]
pub struct VersusModel {
    /// Faces with a settled truth and a model guess.
    pub faces: u32,
    /// The player was right.
    pub you_right: u32,
    /// The model was right.
    pub model_right: u32,
    /// The player was right and the model was not.
    pub you_beat_model: u32,
    /// The model was right and the player was not.
    pub model_beat_you: u32,
    /// `you_beat_model / faces` (`None` with no faces).
    pub beat_share: Option<f64>,
}

/// Compares the player's answers with the model's guesses.
pub fn versus_model(answers: &[Answered]) -> VersusModel {
    let mut v = VersusModel::default();
    for a in answers {
        let (Some(truth), Some(model)) = (a.truth(), a.model) else {
            continue;
        };
        let (you, it) = (a.answer == truth, model == truth);
        v.faces += 1;
        v.you_right += u32::from(you);
        v.model_right += u32::from(it);
        v.you_beat_model += u32::from(you && !it);
        v.model_beat_you += u32::from(it && !you);
    }
    v.beat_share = (v.faces > 0).then(|| f64::from(v.you_beat_model) / f64::from(v.faces));
    v
}

#[cfg(test)]
mod tests {
    use super::*;
    use Emotion::*;
    use proptest::prelude::*;

    fn retired(answer: Emotion, model: Emotion, label: Emotion) -> Answered {
        Answered {
            answer,
            model: Some(model),
            gold: None,
            status: ImageStatus::Retired { label },
        }
    }

    #[test]
    fn counts_only_settled_faces_with_a_guess() {
        let open = Answered {
            answer: Happy,
            model: Some(Sad),
            gold: None,
            status: ImageStatus::Open,
        };
        let unguessed = Answered {
            model: None,
            ..retired(Happy, Happy, Happy)
        };
        let verified_open = Answered {
            gold: Some(Fear),
            ..open
        };
        let v = versus_model(&[
            open,
            unguessed,
            verified_open,
            retired(Happy, Sad, Happy),
            retired(Sad, Sad, Sad),
            retired(Angry, Disgust, Disgust),
            retired(Fear, Neutral, Surprise),
        ]);
        assert_eq!(
            v,
            VersusModel {
                faces: 5,
                you_right: 2,
                model_right: 2,
                you_beat_model: 1,
                model_beat_you: 1,
                beat_share: Some(0.2),
            }
        );
    }

    #[test]
    fn a_verified_label_overrides_the_consensus() {
        let a = Answered {
            gold: Some(Sad),
            ..retired(Sad, Happy, Happy)
        };
        assert_eq!(versus_model(&[a]).you_beat_model, 1);
    }

    #[test]
    fn nothing_to_compare_has_no_share() {
        assert_eq!(versus_model(&[]).beat_share, None);
    }

    fn emotion() -> impl Strategy<Value = Emotion> {
        (0usize..7).prop_map(|i| Emotion::ALL[i])
    }

    proptest! {
        #[test]
        fn the_counts_add_up(rows in proptest::collection::vec((emotion(), emotion(), emotion()), 0..50)) {
            let answers: Vec<Answered> = rows.iter().map(|&(a, m, t)| retired(a, m, t)).collect();
            let v = versus_model(&answers);
            prop_assert_eq!(v.faces as usize, rows.len());
            prop_assert_eq!(v.you_right + v.model_beat_you, v.model_right + v.you_beat_model);
            prop_assert!(v.you_beat_model <= v.you_right && v.model_beat_you <= v.model_right);
            if let Some(s) = v.beat_share { prop_assert!((0.0..=1.0).contains(&s)); }
        }
    }
}
