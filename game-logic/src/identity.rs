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
    #[error("name may not contain control or invisible characters, or two spaces in a row")]
    Characters,
    #[error("name must not start or end with a space")]
    Spaces,
}

/// A validated display name: 2–32 characters of any script and punctuation
/// (a name like `<img src=x onerror=alert(1)>` is allowed: every client
/// renders names as text, and the browser tests check it); no control or
/// invisible characters (zero-width, bidirectional overrides), no leading,
/// trailing or doubled spaces.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
#[serde(transparent)]
pub struct DisplayName(String);

impl DisplayName {
    pub const MIN_CHARS: usize = 2;
    pub const MAX_CHARS: usize = 32;

    pub fn parse(raw: &str) -> Result<DisplayName, NameError> {
        let n = raw.chars().count();
        if !(Self::MIN_CHARS..=Self::MAX_CHARS).contains(&n) {
            return Err(NameError::Length {
                min: Self::MIN_CHARS,
                max: Self::MAX_CHARS,
            });
        }
        if raw.starts_with(char::is_whitespace) || raw.ends_with(char::is_whitespace) {
            return Err(NameError::Spaces);
        }
        let invisible = |c: char| {
            c.is_control()
                || matches!(c, '\u{200B}'..='\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2060}'..='\u{2069}' | '\u{FEFF}')
        };
        if raw.chars().any(invisible) {
            return Err(NameError::Characters);
        }
        let doubled = raw
            .chars()
            .zip(raw.chars().skip(1))
            .any(|(a, b)| a.is_whitespace() && b.is_whitespace());
        if doubled {
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
        for n in [
            "Al",
            "Zoë Ng",
            "player_1",
            "J.-P.",
            "東京太郎",
            "<img src=x onerror=alert(1)>",
            "{\"$gt\":\"\"}",
        ] {
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
            DisplayName::parse(&"x".repeat(33)),
            Err(NameError::Length { .. })
        ));
        assert_eq!(DisplayName::parse("a\u{0}b"), Err(NameError::Characters));
        assert_eq!(DisplayName::parse("ab\u{7}"), Err(NameError::Characters));
        assert_eq!(DisplayName::parse("a\u{202E}b"), Err(NameError::Characters));
        assert_eq!(DisplayName::parse("a\u{200B}b"), Err(NameError::Characters));
        assert_eq!(DisplayName::parse(" ab"), Err(NameError::Spaces));
        assert_eq!(DisplayName::parse("ab\t"), Err(NameError::Spaces));
        assert_eq!(DisplayName::parse("a  b"), Err(NameError::Characters));
    }

    #[test]
    fn roles() {
        assert_eq!(Role::parse("moderator"), Some(Role::Moderator));
        assert!(Role::Admin.can_moderate());
        assert!(!Role::Player.can_moderate());
        assert_eq!(Role::parse("root"), None);
    }
}
