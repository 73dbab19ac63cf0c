//! Session tokens (HMAC-SHA256 signed, expiring) and password hashing (argon2id).
//!
//! Token format: `v1.<payload>.<signature>`, both parts base64url without
//! padding; the payload is `<player uuid>:<role>:<expires ms>`. The signing key
//! comes from the config or is generated once into `<data_dir>/token.key`
//! (mode 0600), so tokens survive restarts and are shared by replicas that
//! share the key.

use std::io::Write;
use std::path::Path;

use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use emofy_game::{Millis, PlayerId, Role};
use hmac::{Hmac, Mac};
use rand::RngCore;
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

/// Why a token was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("malformed token")]
    Malformed,
    #[error("bad signature")]
    BadSignature,
    #[error("token expired")]
    Expired,
}

/// Errors loading key material or hashing passwords.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("token key file {path}: {source}")]
    KeyFile {
        path: String,
        source: std::io::Error,
    },
    #[error("token key must be at least 32 bytes")]
    KeyTooShort,
    #[error("password hashing failed: {0}")]
    Hash(String),
}

/// What a valid token says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Claims {
    pub player: PlayerId,
    pub role: Role,
    pub expires: Millis,
}

/// The HMAC key that signs session tokens.
#[derive(Clone)]
pub struct TokenKey(HmacSha256);

impl std::fmt::Debug for TokenKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TokenKey(..)")
    }
}

impl TokenKey {
    /// A key from configured secret text (at least 32 bytes).
    pub fn from_secret(secret: &str) -> Result<TokenKey, AuthError> {
        TokenKey::from_bytes(secret.as_bytes())
    }

    /// A key from raw bytes (at least 32).
    pub fn from_bytes(bytes: &[u8]) -> Result<TokenKey, AuthError> {
        if bytes.len() < 32 {
            return Err(AuthError::KeyTooShort);
        }
        <HmacSha256 as Mac>::new_from_slice(bytes)
            .map(TokenKey)
            .map_err(|_| AuthError::KeyTooShort)
    }

    /// Reads `<dir>/token.key`, creating it with 32 random bytes if absent.
    pub fn load_or_create(dir: &Path) -> Result<TokenKey, AuthError> {
        let path = dir.join("token.key");
        let err = |source| AuthError::KeyFile {
            path: path.display().to_string(),
            source,
        };
        match std::fs::read_to_string(&path) {
            Ok(text) => {
                let bytes = hex::decode(text.trim()).map_err(|e| err(std::io::Error::other(e)))?;
                TokenKey::from_bytes(&bytes)
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                std::fs::create_dir_all(dir).map_err(err)?;
                let mut key = vec![0u8; 32];
                rand::rng().fill_bytes(&mut key);
                let mut opts = std::fs::OpenOptions::new();
                opts.write(true).create_new(true);
                #[cfg(unix)]
                {
                    use std::os::unix::fs::OpenOptionsExt;
                    opts.mode(0o600);
                }
                let mut f = opts.open(&path).map_err(err)?;
                f.write_all(hex::encode(&key).as_bytes()).map_err(err)?;
                f.sync_all().map_err(err)?;
                TokenKey::from_bytes(&key)
            }
            Err(e) => Err(err(e)),
        }
    }

    fn mac(&self, payload: &str) -> HmacSha256 {
        let mut mac = self.0.clone();
        mac.update(b"v1.");
        mac.update(payload.as_bytes());
        mac
    }

    /// Signs `claims` into a token.
    pub fn issue(&self, claims: &Claims) -> String {
        let payload = URL_SAFE_NO_PAD.encode(format!(
            "{}:{}:{}",
            claims.player,
            claims.role.as_str(),
            claims.expires.0
        ));
        let sig = URL_SAFE_NO_PAD.encode(self.mac(&payload).finalize().into_bytes());
        format!("v1.{payload}.{sig}")
    }

    /// Checks a token's signature and expiry at `now`.
    pub fn verify(&self, token: &str, now: Millis) -> Result<Claims, TokenError> {
        if token.len() > 512 {
            return Err(TokenError::Malformed);
        }
        let mut parts = token.split('.');
        let (Some("v1"), Some(payload), Some(sig), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(TokenError::Malformed);
        };
        let sig = URL_SAFE_NO_PAD
            .decode(sig)
            .map_err(|_| TokenError::Malformed)?;
        self.mac(payload)
            .verify_slice(&sig)
            .map_err(|_| TokenError::BadSignature)?;
        let text = URL_SAFE_NO_PAD
            .decode(payload)
            .map_err(|_| TokenError::Malformed)?;
        let text = String::from_utf8(text).map_err(|_| TokenError::Malformed)?;
        let mut f = text.split(':');
        let (Some(player), Some(role), Some(exp), None) = (f.next(), f.next(), f.next(), f.next())
        else {
            return Err(TokenError::Malformed);
        };
        let claims = Claims {
            player: player.parse().map_err(|_| TokenError::Malformed)?,
            role: Role::parse(role).ok_or(TokenError::Malformed)?,
            expires: Millis(exp.parse().map_err(|_| TokenError::Malformed)?),
        };
        if now > claims.expires {
            return Err(TokenError::Expired);
        }
        Ok(claims)
    }
}

/// Compares two secrets in time that depends on their lengths only.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Hashes a password with argon2id and a random salt (PHC string).
pub fn hash_password(password: &str) -> Result<String, AuthError> {
    let mut salt = [0u8; 16];
    rand::rng().fill_bytes(&mut salt);
    let salt = SaltString::encode_b64(&salt).map_err(|e| AuthError::Hash(e.to_string()))?;
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| AuthError::Hash(e.to_string()))
}

/// Checks a password against a stored PHC hash.
pub fn verify_password(password: &str, phc: &str) -> bool {
    PasswordHash::new(phc)
        .map(|h| {
            Argon2::default()
                .verify_password(password.as_bytes(), &h)
                .is_ok()
        })
        .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;
    use uuid::Uuid;

    fn key() -> TokenKey {
        TokenKey::from_bytes(&[7u8; 32]).unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn token_round_trip_and_tamper() {
        let c = Claims {
            player: PlayerId(Uuid::from_u128(42)),
            role: Role::Player,
            expires: Millis(10_000),
        };
        let t = key().issue(&c);
        assert_eq!(key().verify(&t, Millis(9_000)), Ok(c));
        assert_eq!(key().verify(&t, Millis(10_001)), Err(TokenError::Expired));
        assert_eq!(
            TokenKey::from_bytes(&[8u8; 32])
                .unwrap_or_else(|e| panic!("{e}"))
                .verify(&t, Millis(0)),
            Err(TokenError::BadSignature)
        );
        let forged_payload = URL_SAFE_NO_PAD.encode(format!("{}:admin:10000", c.player));
        let sig = t.rsplit('.').next().unwrap_or_default();
        assert_eq!(
            key().verify(&format!("v1.{forged_payload}.{sig}"), Millis(0)),
            Err(TokenError::BadSignature)
        );
        assert_eq!(
            key().verify("garbage", Millis(0)),
            Err(TokenError::Malformed)
        );
    }

    #[test]
    fn key_file_is_created_once() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let c = Claims {
            player: PlayerId(Uuid::from_u128(1)),
            role: Role::Player,
            expires: Millis(5),
        };
        let a = TokenKey::load_or_create(dir.path())
            .map(|k| k.issue(&c))
            .ok();
        let b = TokenKey::load_or_create(dir.path())
            .map(|k| k.issue(&c))
            .ok();
        assert!(a.is_some());
        assert_eq!(a, b);
        assert!(TokenKey::from_secret("short").is_err());
    }

    #[test]
    fn password_hash_verifies() {
        let h = hash_password("correct horse").unwrap_or_default();
        assert!(h.starts_with("$argon2id$"));
        assert!(verify_password("correct horse", &h));
        assert!(!verify_password("wrong", &h));
        assert!(!verify_password("x", "not a hash"));
    }
}
