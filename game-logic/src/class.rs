//! A class of a K-class label set: the game's seven emotions, or the classes
//! of a label set brought from elsewhere (2 to [`crate::crowd::MAX_CLASSES`]
//! of them, numbered in order of first appearance).
//!
//! Truth inference ([`crate::truth`]) is written once over any `K`: its
//! distributions are `[f64; K]` and its classes anything implementing
//! [`Class`]. The game instantiates it with [`Emotion`] and `K = 7` (the
//! defaults of every generic type there), `emofy aggregate` with
//! [`ClassId`] and the label set's own `K`.

use crate::emotion::{EMOTION_COUNT, Emotion};

/// A class of a K-class set, identified by its index `0..K`.
pub trait Class: Copy + Eq + std::fmt::Debug {
    /// Position in the set, `0..K`.
    fn index(self) -> usize;
    /// The class at `index` (`index < K`; callers only pass indices of a
    /// `[f64; K]` they hold).
    fn of_index(index: usize) -> Self;
}

impl Class for Emotion {
    fn index(self) -> usize {
        Emotion::index(self)
    }

    fn of_index(index: usize) -> Self {
        Emotion::ALL[index % EMOTION_COUNT]
    }
}

/// A class of an external label set, by index.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ClassId(pub u8);

impl Class for ClassId {
    fn index(self) -> usize {
        usize::from(self.0)
    }

    fn of_index(index: usize) -> Self {
        ClassId(u8::try_from(index).unwrap_or(u8::MAX))
    }
}

/// The most probable class of a distribution and its probability (the
/// first of equals).
pub fn top<C: Class, const K: usize>(p: &[f64; K]) -> (C, f64) {
    let mut best = 0;
    for (i, x) in p.iter().enumerate() {
        if *x > p[best] {
            best = i;
        }
    }
    (C::of_index(best), p.get(best).copied().unwrap_or(0.0))
}

/// The uniform distribution over `K` classes.
pub fn uniform<const K: usize>() -> [f64; K] {
    [1.0 / K.max(1) as f64; K]
}

/// Serde for fixed-size arrays of any length (serde's own impls stop at 32
/// and are not generic): a JSON array, refused unless its length is `K`.
pub(crate) mod arrays {
    use serde::de::Error;
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    pub fn serialize<S, T, const K: usize>(a: &[T; K], s: S) -> Result<S::Ok, S::Error>
    where
        S: Serializer,
        T: Serialize,
    {
        a.as_slice().serialize(s)
    }

    pub fn deserialize<'de, D, T, const K: usize>(d: D) -> Result<[T; K], D::Error>
    where
        D: Deserializer<'de>,
        T: Deserialize<'de>,
    {
        let v: Vec<T> = Vec::deserialize(d)?;
        let n = v.len();
        <[T; K]>::try_from(v).map_err(|_| D::Error::invalid_length(n, &"one entry per class"))
    }

    /// A K×K matrix as a JSON array of rows.
    pub mod square {
        use super::*;

        pub fn serialize<S, const K: usize>(m: &[[f64; K]; K], s: S) -> Result<S::Ok, S::Error>
        where
            S: Serializer,
        {
            let rows: Vec<&[f64]> = m.iter().map(|r| r.as_slice()).collect();
            rows.serialize(s)
        }

        pub fn deserialize<'de, D, const K: usize>(d: D) -> Result<[[f64; K]; K], D::Error>
        where
            D: Deserializer<'de>,
        {
            let v: Vec<Vec<f64>> = Vec::deserialize(d)?;
            let n = v.len();
            let mut out = [[0.0; K]; K];
            if n != K {
                return Err(D::Error::invalid_length(n, &"one row per class"));
            }
            for (o, row) in out.iter_mut().zip(v) {
                let m = row.len();
                *o = <[f64; K]>::try_from(row)
                    .map_err(|_| D::Error::invalid_length(m, &"one entry per class"))?;
            }
            Ok(out)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn indices_round_trip() {
        for e in Emotion::ALL {
            assert_eq!(<Emotion as Class>::of_index(Class::index(e)), e);
        }
        for i in 0..16 {
            assert_eq!(ClassId::of_index(i).index(), i);
        }
    }

    #[test]
    fn top_takes_the_first_of_equals() {
        assert_eq!(top::<ClassId, 3>(&[0.2, 0.4, 0.4]), (ClassId(1), 0.4));
        assert_eq!(top::<Emotion, 7>(&uniform::<7>()).0, Emotion::Angry);
    }
}
