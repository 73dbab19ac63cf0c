//! Display names and roles.

use std::fmt;

use serde::{Deserialize, Serialize};

/// What an account may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Player,
    Moderator,
    Admin,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Player => "player",
            Role::Moderator => "moderator",
            Role::Admin => "admin",
        }
    }

    /// Parses a stored role name.
    pub fn parse(s: &str) -> Option<Role> {
        match s {
            "player" => Some(Role::Player),
            "moderator" => Some(Role::Moderator),
            "admin" => Some(Role::Admin),
            _ => None,
        }
    }

    /// Whether this role may review and moderate labels.
    pub fn can_moderate(self) -> bool {
        matches!(self, Role::Moderator | Role::Admin)
    }
}

/// Why a display name was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    #[error("name must be {min} to {max} characters long")]
    Length { min: usize, max: usize },
    #[error("name may contain only letters, digits, spaces, '-', '_' and '.'")]
    Characters,
    #[error("name must not start or end with a space")]
    Spaces,
}

/// A validated display name: 2–24 characters; Unicode letters and digits,
/// single inner spaces, `-`, `_`, `.`. Anything that could be markup is refused,
/// but clients must still render names as text.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
#[serde(transparent)]
pub struct DisplayName(String);

impl DisplayName {
    pub const MIN_CHARS: usize = 2;
    pub const MAX_CHARS: usize = 24;

    pub fn parse(raw: &str) -> Result<DisplayName, NameError> {
        let n = raw.chars().count();
        if !(Self::MIN_CHARS..=Self::MAX_CHARS).contains(&n) {
            return Err(NameError::Length {
                min: Self::MIN_CHARS,
                max: Self::MAX_CHARS,
            });
        }
        if raw.starts_with(' ') || raw.ends_with(' ') {
            return Err(NameError::Spaces);
        }
        if raw.contains("  ") {
            return Err(NameError::Characters);
        }
        let ok = raw
            .chars()
            .all(|c| c.is_alphanumeric() || matches!(c, ' ' | '-' | '_' | '.'));
        if !ok {
            return Err(NameError::Characters);
        }
        Ok(DisplayName(raw.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for DisplayName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for DisplayName {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        DisplayName::parse(&s).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_reasonable_names() {
        for n in ["Al", "Zoë Ng", "player_1", "J.-P.", "東京太郎"] {
            assert!(DisplayName::parse(n).is_ok(), "{n}");
        }
    }

    #[test]
    fn refuses_bad_names() {
        assert!(matches!(
            DisplayName::parse("A"),
            Err(NameError::Length { .. })
        ));
        assert!(matches!(
            DisplayName::parse(&"x".repeat(25)),
            Err(NameError::Length { .. })
        ));
        assert_eq!(
            DisplayName::parse("<img src=x>"),
            Err(NameError::Characters)
        );
        assert_eq!(DisplayName::parse("a\u{0}b"), Err(NameError::Characters));
        assert_eq!(DisplayName::parse(" ab"), Err(NameError::Spaces));
        assert_eq!(DisplayName::parse("a  b"), Err(NameError::Characters));
        assert_eq!(
            DisplayName::parse("{\"$gt\":\"\"}"),
            Err(NameError::Characters)
        );
    }

    #[test]
    fn roles() {
        assert_eq!(Role::parse("moderator"), Some(Role::Moderator));
        assert!(Role::Admin.can_moderate());
        assert!(!Role::Player.can_moderate());
        assert_eq!(Role::parse("root"), None);
    }
}
