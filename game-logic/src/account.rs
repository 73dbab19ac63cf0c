//! Account credentials: usernames (unique case-insensitively after
//! normalization) and the password policy of OWASP ASVS 5.0 V6.2: at least
//! 8 characters, at least 64 allowed (here 128), no composition rules, and
//! none of the most common passwords ([`COMMON_PASSWORDS`]).

use unicode_normalization::UnicodeNormalization;

/// A normalized username: NFKC, lower case, 3–64 characters of letters,
/// digits, `_`, `.` and `-` (ASCII), so `Ann`, `ANN` and `ａｎｎ` are one
/// account. What the stores key accounts by.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Username(String);

/// Why a username was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UsernameError {
    #[error("a username is 3 to 64 characters long")]
    Length,
    #[error("a username may hold letters a–z, digits, '_', '.' and '-' only")]
    Characters,
}

impl Username {
    pub const MIN: usize = 3;
    pub const MAX: usize = 64;

    pub fn parse(raw: &str) -> Result<Username, UsernameError> {
        if raw.len() > 4 * Self::MAX {
            return Err(UsernameError::Length);
        }
        let s: String = raw.trim().nfkc().collect::<String>().to_lowercase();
        let n = s.chars().count();
        if !(Self::MIN..=Self::MAX).contains(&n) {
            return Err(UsernameError::Length);
        }
        if !s
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '_' | '.' | '-'))
        {
            return Err(UsernameError::Characters);
        }
        Ok(Username(s))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Why a new password was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PasswordError {
    #[error("a password needs at least {} characters", MIN_PASSWORD_CHARS)]
    TooShort,
    #[error("a password may have at most {} characters", MAX_PASSWORD_CHARS)]
    TooLong,
    #[error("that password is among the most common ones; choose another")]
    Common,
}

/// Fewest characters of a new password.
pub const MIN_PASSWORD_CHARS: usize = 8;
/// Most characters of a new password (ASVS: at least 64 allowed).
pub const MAX_PASSWORD_CHARS: usize = 128;

/// Common passwords of 8 or more characters (shorter ones are refused by
/// length), from the public lists of leaked passwords' frequency; compared
/// case-insensitively.
pub const COMMON_PASSWORDS: &[&str] = &[
    "password",
    "12345678",
    "123456789",
    "1234567890",
    "12345678910",
    "qwertyuiop",
    "iloveyou",
    "password1",
    "password12",
    "password123",
    "11111111",
    "00000000",
    "88888888",
    "87654321",
    "abc12345",
    "abcd1234",
    "sunshine",
    "princess",
    "football",
    "baseball",
    "welcome1",
    "welcome123",
    "passw0rd",
    "p@ssw0rd",
    "p@ssword",
    "trustno1",
    "superman",
    "qwerty123",
    "qwerty12",
    "qwertyui",
    "1q2w3e4r",
    "1q2w3e4r5t",
    "1qaz2wsx",
    "zaq12wsx",
    "q1w2e3r4",
    "q1w2e3r4t5",
    "12qwaszx",
    "starwars",
    "whatever",
    "asdfghjkl",
    "asdfasdf",
    "letmein1",
    "letmein123",
    "michelle",
    "jennifer",
    "computer",
    "corvette",
    "mercedes",
    "12341234",
    "charlie1",
    "liverpool",
    "chocolate",
    "butterfly",
    "987654321",
    "monkey12",
    "aa123456",
    "admin123",
    "administrator",
    "changeme",
    "iloveyou1",
    "football1",
    "baseball1",
    "dragon12",
    "master12",
    "michael1",
    "jordan23",
    "shadow12",
    "11223344",
    "12344321",
    "123123123",
    "147258369",
    "159753456",
    "1234qwer",
    "qazwsxedc",
    "zxcvbnm1",
    "zxcvbnm123",
    "iloveyou2",
    "loveyou1",
    "lovely12",
    "babygirl",
    "princess1",
    "sunshine1",
    "samantha",
    "nicole12",
    "danielle",
    "jessica1",
    "ashley12",
    "basketball",
    "internet",
    "cookie123",
    "pokemon1",
    "minecraft",
    "fortnite",
    "emofy123",
    "emofyemofy",
    "letmeinplease",
];

/// Whether `password` may be a new account's password.
pub fn password_problem(password: &str) -> Option<PasswordError> {
    let n = password.chars().count();
    if n < MIN_PASSWORD_CHARS {
        return Some(PasswordError::TooShort);
    }
    if n > MAX_PASSWORD_CHARS {
        return Some(PasswordError::TooLong);
    }
    let lower = password.to_lowercase();
    COMMON_PASSWORDS
        .iter()
        .any(|c| *c == lower)
        .then_some(PasswordError::Common)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usernames_are_one_account_whatever_their_case_or_width() {
        let ann = Username::parse("Ann").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            Username::parse("ANN").unwrap_or_else(|e| panic!("{e}")),
            ann
        );
        assert_eq!(
            Username::parse(" ａｎｎ ").unwrap_or_else(|e| panic!("{e}")),
            ann
        );
        assert_eq!(ann.as_str(), "ann");
        assert_eq!(
            Username::parse("mod-1b2c.x_y")
                .unwrap_or_else(|e| panic!("{e}"))
                .as_str(),
            "mod-1b2c.x_y"
        );
        assert_eq!(Username::parse("al"), Err(UsernameError::Length));
        assert_eq!(Username::parse(&"a".repeat(65)), Err(UsernameError::Length));
        assert_eq!(
            Username::parse(&"a".repeat(500)),
            Err(UsernameError::Length)
        );
        for bad in ["ann smith", "zoë", "{\"$gt\":\"\"}", "ann\u{200b}", "a/b/c"] {
            assert_eq!(
                Username::parse(bad),
                Err(UsernameError::Characters),
                "{bad}"
            );
        }
    }

    #[test]
    fn passwords_need_length_not_composition_and_not_a_common_one() {
        assert_eq!(password_problem("short12"), Some(PasswordError::TooShort));
        assert_eq!(password_problem("ünïcødé"), Some(PasswordError::TooShort));
        assert_eq!(password_problem("all lower case words"), None);
        assert_eq!(password_problem(&"x".repeat(64)), None);
        assert_eq!(password_problem(&"x".repeat(128)), None);
        assert_eq!(
            password_problem(&"x".repeat(129)),
            Some(PasswordError::TooLong)
        );
        assert_eq!(password_problem("Password123"), Some(PasswordError::Common));
        assert_eq!(password_problem("QWERTYUIOP"), Some(PasswordError::Common));
        assert!(
            COMMON_PASSWORDS
                .iter()
                .all(|p| p.chars().count() >= MIN_PASSWORD_CHARS)
        );
    }
}
