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

/// Where a signed-in caller stands now, from the store's record, not the
/// token's claims: a token says who the caller is, the store says what they
/// may do, so a role change or a ban takes effect on the caller's next
/// request on every replica (tokens carry the role they were issued with
/// and live for days).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Standing {
    /// The player exists and is not banned: their current role.
    Active(Role),
    /// A moderator banned the player.
    Banned,
    /// No such player (erased): the token names nobody.
    Gone,
}

impl Standing {
    /// From the stored role (`None`: no such player) and whether a
    /// moderator banned them.
    pub fn of(stored_role: Option<Role>, banned: bool) -> Standing {
        match stored_role {
            None => Standing::Gone,
            Some(_) if banned => Standing::Banned,
            Some(role) => Standing::Active(role),
        }
    }

    /// The role the caller acts with, if they may act with at least `needed`.
    pub fn permits(self, needed: Role) -> Option<Role> {
        let Standing::Active(role) = self else {
            return None;
        };
        let ok = match needed {
            Role::Player => true,
            Role::Moderator => role.can_moderate(),
            Role::Admin => role == Role::Admin,
        };
        ok.then_some(role)
    }
}

/// Why a display name was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    #[error("name must be {min} to {max} characters long")]
    Length { min: usize, max: usize },
    #[error(
        "name may not contain invisible, formatting, control, private-use or unassigned characters, \
         spaces other than a plain space, or two spaces in a row"
    )]
    Characters,
    #[error("name must not start or end with a space")]
    Spaces,
    #[error("name must show at least one letter, digit, symbol or punctuation mark")]
    Blank,
}

/// Code points that render as nothing or as blank space although their
/// general category says otherwise: Unicode's `Default_Ignorable_Code_Point`
/// (Unicode 16; it includes the Hangul fillers, the variation selectors,
/// the tag characters and the combining grapheme joiner) and the braille
/// blank, U+2800.
fn looks_blank(c: char) -> bool {
    matches!(c,
        '\u{00AD}' | '\u{034F}' | '\u{061C}' | '\u{115F}' | '\u{1160}' | '\u{17B4}' | '\u{17B5}'
        | '\u{180B}'..='\u{180F}' | '\u{200B}'..='\u{200F}' | '\u{202A}'..='\u{202E}'
        | '\u{2060}'..='\u{206F}' | '\u{2800}' | '\u{3164}' | '\u{FE00}'..='\u{FE0F}' | '\u{FEFF}'
        | '\u{FFA0}' | '\u{FFF0}'..='\u{FFF8}' | '\u{1BCA0}'..='\u{1BCA3}'
        | '\u{1D173}'..='\u{1D17A}' | '\u{E0000}'..='\u{E0FFF}')
}

/// Whether `c` may appear in a name (see [`DisplayName`]).
fn allowed(c: char) -> bool {
    use unicode_properties::{GeneralCategory as G, UnicodeGeneralCategory};
    if c == ' ' {
        return true;
    }
    if looks_blank(c) {
        return false;
    }
    !matches!(
        c.general_category(),
        G::Control
            | G::Format
            | G::Surrogate
            | G::PrivateUse
            | G::Unassigned
            | G::LineSeparator
            | G::ParagraphSeparator
            | G::SpaceSeparator
    )
}

/// Whether `c` shows something by itself (not a space, not a combining mark).
fn visible(c: char) -> bool {
    use unicode_properties::{GeneralCategoryGroup as G, UnicodeGeneralCategory};
    matches!(
        c.general_category_group(),
        G::Letter | G::Number | G::Punctuation | G::Symbol
    )
}

/// A validated display name: NFC-normalized, 2–32 characters of any script,
/// punctuation and symbols (a name like `<img src=x onerror=alert(1)>` is
/// allowed: every client renders names as text, and the browser tests check
/// it). Refused by Unicode property, not by a list of scripts:
/// * general categories Cc (control), Cf (format: bidirectional controls,
///   zero-width joiners, soft hyphen, Arabic letter mark, Mongolian vowel
///   separator, tag characters), Co (private use), Cn (unassigned, as of the
///   Unicode version of the `unicode-properties` crate), Cs, Zl and Zp (line
///   and paragraph separators), and every Zs space separator but U+0020;
/// * `Default_Ignorable_Code_Point` (the Hangul fillers U+115F, U+1160,
///   U+3164, U+FFA0, variation selectors, the combining grapheme joiner) and
///   the braille blank U+2800, which render blank;
/// * a leading, trailing or doubled space, and a name without a single
///   letter, digit, punctuation mark or symbol (only combining marks).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
#[serde(transparent)]
pub struct DisplayName(String);

impl DisplayName {
    pub const MIN_CHARS: usize = 2;
    pub const MAX_CHARS: usize = 32;

    pub fn parse(raw: &str) -> Result<DisplayName, NameError> {
        use unicode_normalization::UnicodeNormalization;
        // Bound the work before normalizing: NFC never shrinks a string below
        // a quarter of its characters.
        if raw.chars().count() > Self::MAX_CHARS * 4 {
            return Err(NameError::Length {
                min: Self::MIN_CHARS,
                max: Self::MAX_CHARS,
            });
        }
        let name: String = raw.nfc().collect();
        let n = name.chars().count();
        if !(Self::MIN_CHARS..=Self::MAX_CHARS).contains(&n) {
            return Err(NameError::Length {
                min: Self::MIN_CHARS,
                max: Self::MAX_CHARS,
            });
        }
        if name.starts_with(char::is_whitespace) || name.ends_with(char::is_whitespace) {
            return Err(NameError::Spaces);
        }
        if !name.chars().all(allowed) {
            return Err(NameError::Characters);
        }
        if name.contains("  ") {
            return Err(NameError::Characters);
        }
        if !name.chars().any(visible) {
            return Err(NameError::Blank);
        }
        Ok(DisplayName(name))
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

    #[test]
    fn the_store_decides_what_a_caller_may_do() {
        let roles = [Role::Player, Role::Moderator, Role::Admin];
        for stored in roles {
            for needed in roles {
                let got = Standing::of(Some(stored), false).permits(needed);
                let rank = |r: Role| roles.iter().position(|x| *x == r);
                assert_eq!(
                    got.is_some(),
                    rank(stored) >= rank(needed),
                    "{stored:?} {needed:?}"
                );
                assert!(got.is_none_or(|r| r == stored));
                // Banned or erased: nothing, whatever the role was.
                assert_eq!(Standing::of(Some(stored), true).permits(needed), None);
                assert_eq!(Standing::of(None, false).permits(needed), None);
            }
        }
        assert_eq!(Standing::of(Some(Role::Admin), true), Standing::Banned);
        assert_eq!(Standing::of(None, true), Standing::Gone);
    }

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
    fn refuses_invisible_and_look_blank_code_points() {
        // Each listed by the hardening audit, inside an otherwise fine name.
        for c in [
            '\u{061C}',
            '\u{3164}',
            '\u{2800}',
            '\u{00AD}',
            '\u{034F}',
            '\u{180E}',
            '\u{E0041}',
            '\u{E007F}',
            '\u{2028}',
            '\u{2029}',
            '\u{115F}',
            '\u{1160}',
            '\u{FFA0}',
            '\u{FE0F}',
            '\u{200D}',
            '\u{2066}',
            '\u{E000}',
            '\u{F8FF}',
            '\u{3000}',
            '\u{00A0}',
            '\u{2007}',
            '\u{0378}',
            '\u{10FFFF}',
        ] {
            let name = format!("Ada{c}Lovelace");
            assert_eq!(
                DisplayName::parse(&name),
                Err(NameError::Characters),
                "U+{:04X}",
                u32::from(c)
            );
        }
        // Combining marks alone are no name; on a letter they are fine.
        assert_eq!(
            DisplayName::parse("\u{0301}\u{0301}"),
            Err(NameError::Blank)
        );
        assert!(DisplayName::parse("Zoe\u{0308}").is_ok());
    }

    #[test]
    fn names_are_nfc_normalized() {
        // "e" + combining acute becomes "é"; both spellings are one name.
        let decomposed = DisplayName::parse("Rene\u{0301}").map(|n| n.as_str().to_owned());
        let composed = DisplayName::parse("Ren\u{00E9}").map(|n| n.as_str().to_owned());
        assert_eq!(decomposed, composed);
        assert_eq!(composed.ok().as_deref(), Some("Ren\u{00E9}"));
        // Normalizing never lets a very long input through.
        assert!(DisplayName::parse(&"a\u{0301}".repeat(200)).is_err());
    }

    #[test]
    fn roles() {
        assert_eq!(Role::parse("moderator"), Some(Role::Moderator));
        assert!(Role::Admin.can_moderate());
        assert!(!Role::Player.can_moderate());
        assert_eq!(Role::parse("root"), None);
    }
}
