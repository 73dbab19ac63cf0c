//! Leaderboard periods: all-time, the UTC day, the UTC week (Monday to
//! Sunday), and the composite rank key that orders a board.
//!
//! Pure calendar arithmetic on [`Millis`] (no clock, no time zone database):
//! a moment falls into exactly one bucket per period, named by the date its
//! bucket starts (`d2026-11-26`, `w2026-11-23`), and each bucket but
//! all-time ends at a known moment, after which its board can expire.

use serde::{Deserialize, Serialize};

use crate::Millis;

const DAY_MS: u64 = 86_400_000;

/// A leaderboard period.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Period {
    AllTime,
    /// The UTC calendar day.
    Daily,
    /// The UTC week, Monday 00:00 to Sunday 24:00.
    Weekly,
}

/// One period's slice of time that a moment falls into.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Bucket {
    pub period: Period,
    /// `all`, `d<YYYY-MM-DD>` or `w<YYYY-MM-DD of its Monday>`.
    pub id: String,
    /// When the bucket ends (exclusive); `None` for all-time.
    pub ends: Option<Millis>,
}

impl Period {
    pub const ALL: [Period; 3] = [Period::AllTime, Period::Daily, Period::Weekly];

    pub fn as_str(self) -> &'static str {
        match self {
            Period::AllTime => "all_time",
            Period::Daily => "daily",
            Period::Weekly => "weekly",
        }
    }

    pub fn parse(s: &str) -> Option<Period> {
        Period::ALL.into_iter().find(|p| p.as_str() == s)
    }

    /// The bucket `at` falls into.
    pub fn bucket(self, at: Millis) -> Bucket {
        let day = at.0 / DAY_MS;
        match self {
            Period::AllTime => Bucket {
                period: self,
                id: "all".into(),
                ends: None,
            },
            Period::Daily => Bucket {
                period: self,
                id: format!("d{}", date(day as i64)),
                ends: Some(Millis((day + 1) * DAY_MS)),
            },
            Period::Weekly => {
                // Day 0 (1970-01-01) was a Thursday, 3 days after a Monday.
                let monday = day as i64 - ((day + 3) % 7) as i64;
                Bucket {
                    period: self,
                    id: format!("w{}", date(monday)),
                    ends: Some(Millis((monday + 7) as u64 * DAY_MS)),
                }
            }
        }
    }
}

/// `YYYY-MM-DD` of a day number since 1970-01-01 (proleptic Gregorian;
/// H. Hinnant's `civil_from_days`).
fn date(days: i64) -> String {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02}")
}

/// Seconds from 2024-01-01T00:00Z, the origin of the tie-break part of a rank key.
const TIE_ORIGIN_MS: u64 = 1_704_067_200_000;
/// Rank keys hold the points above this factor and the tie-break below it.
pub const RANK_FACTOR: u64 = 1_000_000_000;
/// The most points a rank key holds exactly in an IEEE double (Redis scores).
pub const MAX_RANKED_POINTS: u64 = (1 << 53) / RANK_FACTOR - 1;

/// A board's sort key, larger first: points, then whoever reached them
/// earlier (to the second, from 2024 on; earlier moments count as 2024-01-01).
/// Exact in an `f64` up to [`MAX_RANKED_POINTS`].
pub fn rank_key(points: u64, reached: Millis) -> u64 {
    let secs = reached.0.saturating_sub(TIE_ORIGIN_MS) / 1000;
    points.min(MAX_RANKED_POINTS) * RANK_FACTOR + (RANK_FACTOR - 1 - secs.min(RANK_FACTOR - 1))
}

/// The points a rank key holds.
pub fn points_of(key: u64) -> u64 {
    key / RANK_FACTOR
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(y: i64, m: u32, d: u32, h: u64) -> Millis {
        // Days from civil (Hinnant), for test dates only.
        let y = if m <= 2 { y - 1 } else { y };
        let era = y.div_euclid(400);
        let yoe = y - era * 400;
        let mp = (i64::from(m) + 9) % 12;
        let doy = (153 * mp + 2) / 5 + i64::from(d) - 1;
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
        let days = era * 146_097 + doe - 719_468;
        Millis(days as u64 * DAY_MS + h * 3_600_000)
    }

    #[test]
    fn known_dates() {
        let thu = ms(2026, 11, 26, 18);
        assert_eq!(Period::Daily.bucket(thu).id, "d2026-11-26");
        assert_eq!(Period::Weekly.bucket(thu).id, "w2026-11-23");
        assert_eq!(Period::Weekly.bucket(thu).ends, Some(ms(2026, 11, 30, 0)));
        assert_eq!(Period::Daily.bucket(thu).ends, Some(ms(2026, 11, 27, 0)));
        // Monday 00:00 starts a week; Sunday 23:00 is still the old one.
        assert_eq!(Period::Weekly.bucket(ms(2026, 11, 30, 0)).id, "w2026-11-30");
        assert_eq!(
            Period::Weekly.bucket(ms(2026, 11, 29, 23)).id,
            "w2026-11-23"
        );
        // Across a year and a leap day.
        assert_eq!(Period::Weekly.bucket(ms(2027, 1, 1, 5)).id, "w2026-12-28");
        assert_eq!(Period::Daily.bucket(ms(2028, 2, 29, 1)).id, "d2028-02-29");
        assert_eq!(Period::Weekly.bucket(Millis(0)).id, "w1969-12-29");
        assert_eq!(Period::AllTime.bucket(thu).ends, None);
        assert_eq!(Period::parse("weekly"), Some(Period::Weekly));
        assert_eq!(Period::parse("monthly"), None);
    }

    #[test]
    fn rank_keys_order_points_then_the_earlier_achiever() {
        let t = ms(2026, 11, 26, 12);
        assert!(rank_key(10, t) > rank_key(9, Millis(t.0 - 1_000_000)));
        assert!(rank_key(10, t) > rank_key(10, Millis(t.0 + 1000)));
        assert_eq!(points_of(rank_key(1234, t)), 1234);
        let k = rank_key(MAX_RANKED_POINTS, t);
        assert_eq!(k as f64 as u64, k, "exact as a double");
    }
}
