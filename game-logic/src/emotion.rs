//! The seven emotion classes, in Emofy's fixed order.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// Number of emotion classes.
pub const EMOTION_COUNT: usize = 7;

/// An emotion class. The order (and so [`Emotion::index`]) is part of the
/// data format: stored vote counts, probabilities and exports use it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Emotion {
    Angry,
    Disgust,
    Fear,
    Happy,
    Neutral,
    Sad,
    Surprise,
}

impl Emotion {
    /// All classes in index order.
    pub const ALL: [Emotion; EMOTION_COUNT] = [
        Emotion::Angry,
        Emotion::Disgust,
        Emotion::Fear,
        Emotion::Happy,
        Emotion::Neutral,
        Emotion::Sad,
        Emotion::Surprise,
    ];

    /// Position of the class in [`Emotion::ALL`] (0..7).
    pub fn index(self) -> usize {
        self as usize
    }

    /// The class at `index`, if `index < 7`.
    pub fn from_index(index: usize) -> Option<Emotion> {
        Self::ALL.get(index).copied()
    }

    /// Stable lowercase name, as used on the wire and in storage.
    pub fn as_str(self) -> &'static str {
        match self {
            Emotion::Angry => "angry",
            Emotion::Disgust => "disgust",
            Emotion::Fear => "fear",
            Emotion::Happy => "happy",
            Emotion::Neutral => "neutral",
            Emotion::Sad => "sad",
            Emotion::Surprise => "surprise",
        }
    }

    /// Index of this class in the FER2013 CSV convention
    /// (0 angry, 1 disgust, 2 fear, 3 happy, 4 sad, 5 surprise, 6 neutral).
    pub fn fer2013_index(self) -> usize {
        match self {
            Emotion::Angry => 0,
            Emotion::Disgust => 1,
            Emotion::Fear => 2,
            Emotion::Happy => 3,
            Emotion::Sad => 4,
            Emotion::Surprise => 5,
            Emotion::Neutral => 6,
        }
    }

    /// Class for a FER2013 CSV emotion index.
    pub fn from_fer2013_index(index: usize) -> Option<Emotion> {
        Self::ALL.into_iter().find(|e| e.fer2013_index() == index)
    }
}

impl fmt::Display for Emotion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Returned when a string is not one of the seven class names.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "unknown emotion {0:?}; expected one of angry, disgust, fear, happy, neutral, sad, surprise"
)]
pub struct UnknownEmotion(pub String);

impl FromStr for Emotion {
    type Err = UnknownEmotion;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let lower = s.trim().to_ascii_lowercase();
        Self::ALL
            .into_iter()
            .find(|e| e.as_str() == lower)
            .ok_or_else(|| UnknownEmotion(s.to_owned()))
    }
}

/// The index of the largest value (the first of equals; 0 when empty): the
/// top class of any distribution or score vector, whatever its class set.
pub fn top_index<T: PartialOrd>(values: &[T]) -> usize {
    let mut best = 0;
    for (i, v) in values.iter().enumerate() {
        if *v > values[best] {
            best = i;
        }
    }
    best
}

/// The most probable class of a distribution over the emotions (the first
/// of equals), and its probability.
pub fn map(posterior: &[f64; EMOTION_COUNT]) -> (Emotion, f64) {
    let best = top_index(posterior);
    (Emotion::ALL[best], posterior[best])
}

/// The most probable class of a distribution over the emotions (the first of equals).
pub fn top_of(probabilities: &[f32; EMOTION_COUNT]) -> Emotion {
    Emotion::ALL[top_index(probabilities)]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn order_and_names_are_stable() {
        let names: Vec<_> = Emotion::ALL.iter().map(|e| e.as_str()).collect();
        assert_eq!(
            names,
            [
                "angry", "disgust", "fear", "happy", "neutral", "sad", "surprise"
            ]
        );
        for (i, e) in Emotion::ALL.iter().enumerate() {
            assert_eq!(e.index(), i);
            assert_eq!(Emotion::from_index(i), Some(*e));
            assert_eq!(e.as_str().parse::<Emotion>(), Ok(*e));
        }
        assert_eq!(Emotion::from_index(7), None);
    }

    #[test]
    fn serde_uses_lowercase_names() {
        assert_eq!(
            serde_json::to_string(&Emotion::Surprise).ok().as_deref(),
            Some("\"surprise\"")
        );
        let e: Result<Emotion, _> = serde_json::from_str("\"happy\"");
        assert_eq!(e.ok(), Some(Emotion::Happy));
        assert!(serde_json::from_str::<Emotion>("\"HAPPY!\"").is_err());
    }

    #[test]
    fn fer2013_mapping_is_a_bijection_with_its_own_order() {
        let expected = [
            Emotion::Angry,
            Emotion::Disgust,
            Emotion::Fear,
            Emotion::Happy,
            Emotion::Sad,
            Emotion::Surprise,
            Emotion::Neutral,
        ];
        for (i, e) in expected.iter().enumerate() {
            assert_eq!(Emotion::from_fer2013_index(i), Some(*e));
            assert_eq!(e.fer2013_index(), i);
        }
        assert_eq!(Emotion::from_fer2013_index(7), None);
    }

    #[test]
    fn parse_rejects_unknown() {
        assert!("contempt".parse::<Emotion>().is_err());
        assert_eq!(" Happy ".parse::<Emotion>(), Ok(Emotion::Happy));
    }
}
