//! Analyst login: argon2 password hashes, server-side sessions behind a random cookie, and a
//! CSRF token per session (and per login form) that every POST form must carry.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use axum::http::HeaderMap;
use rand::RngCore;
use subtle::ConstantTimeEq;

use crate::error::{Error, Result};

/// The session cookie.
pub const SESSION_COOKIE: &str = "teiten_session";
/// The login form's CSRF cookie (double submit, before there is a session).
pub const LOGIN_CSRF_COOKIE: &str = "teiten_login_csrf";

/// Hashes a password (argon2id, random salt) into a PHC string for the config.
pub fn hash_password(password: &str) -> Result<String> {
    let salt = SaltString::generate(&mut rand::rngs::OsRng);
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| Error::Config {
            what: "hash-password".into(),
            message: e.to_string(),
        })
}

/// Whether `password` matches the PHC `hash`.
pub fn verify_password(hash: &str, password: &str) -> bool {
    PasswordHash::new(hash)
        .map(|h| {
            Argon2::default()
                .verify_password(password.as_bytes(), &h)
                .is_ok()
        })
        .unwrap_or(false)
}

/// A hash to verify against when the user is unknown, so that the answer takes as long.
pub(crate) fn dummy_hash() -> &'static str {
    static DUMMY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    DUMMY.get_or_init(|| hash_password("not a password").unwrap_or_default())
}

/// 32 random bytes as hex.
pub fn random_token() -> String {
    let mut b = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut b);
    hex::encode(b)
}

/// Constant-time equality of two tokens.
pub fn same_token(a: &str, b: &str) -> bool {
    !a.is_empty() && a.len() == b.len() && bool::from(a.as_bytes().ct_eq(b.as_bytes()))
}

/// A cookie value from the request headers.
pub fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(axum::http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_owned())
}

/// A `Set-Cookie` value: HttpOnly, SameSite=Strict, Path=/, Secure unless turned off.
pub fn set_cookie(name: &str, value: &str, max_age: u64, secure: bool) -> String {
    format!(
        "{name}={value}; Path=/; HttpOnly; SameSite=Strict; Max-Age={max_age}{}",
        if secure { "; Secure" } else { "" }
    )
}

/// A logged-in analyst.
#[derive(Debug, Clone)]
pub struct Session {
    /// User name.
    pub user: String,
    /// The CSRF token of this session's forms.
    pub csrf: String,
    expires: Instant,
}

/// Sessions in memory (a restart logs everyone out).
#[derive(Debug)]
pub struct Sessions {
    ttl: Duration,
    map: Mutex<HashMap<String, Session>>,
}

impl Sessions {
    /// Sessions lasting `ttl`.
    pub fn new(ttl: Duration) -> Sessions {
        Sessions {
            ttl,
            map: Mutex::new(HashMap::new()),
        }
    }

    /// Starts a session; returns the cookie token.
    pub fn create(&self, user: &str) -> String {
        let token = random_token();
        let mut map = self.map.lock().unwrap_or_else(|e| e.into_inner());
        map.retain(|_, s| s.expires > Instant::now());
        map.insert(
            token.clone(),
            Session {
                user: user.to_owned(),
                csrf: random_token(),
                expires: Instant::now() + self.ttl,
            },
        );
        token
    }

    /// The live session of a request, if any.
    pub fn get(&self, headers: &HeaderMap) -> Option<(String, Session)> {
        let token = cookie(headers, SESSION_COOKIE)?;
        let map = self.map.lock().unwrap_or_else(|e| e.into_inner());
        map.get(&token)
            .filter(|s| s.expires > Instant::now())
            .map(|s| (token.clone(), s.clone()))
    }

    /// Ends a session.
    pub fn remove(&self, token: &str) {
        self.map
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(token);
    }

    /// The session lifetime.
    pub fn ttl(&self) -> Duration {
        self.ttl
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_and_verify() {
        let h = hash_password("correct horse").unwrap();
        assert!(h.starts_with("$argon2id$"), "{h}");
        assert!(verify_password(&h, "correct horse"));
        assert!(!verify_password(&h, "wrong"));
        assert!(!verify_password("garbage", "correct horse"));
    }

    #[test]
    fn cookies() {
        let mut h = HeaderMap::new();
        h.insert("cookie", "a=1; teiten_session=abc; b=2".parse().unwrap());
        assert_eq!(cookie(&h, SESSION_COOKIE).as_deref(), Some("abc"));
        assert_eq!(cookie(&h, "c"), None);
        let c = set_cookie("x", "y", 60, true);
        assert!(c.contains("HttpOnly") && c.contains("SameSite=Strict") && c.contains("Secure"));
    }

    #[test]
    fn tokens() {
        assert!(same_token("abc", "abc"));
        assert!(!same_token("abc", "abd"));
        assert!(!same_token("", ""));
        assert_eq!(random_token().len(), 64);
    }

    #[test]
    fn sessions_expire() {
        let s = Sessions::new(Duration::from_millis(30));
        let t = s.create("alice");
        let mut h = HeaderMap::new();
        h.insert("cookie", format!("{SESSION_COOKIE}={t}").parse().unwrap());
        assert_eq!(s.get(&h).unwrap().1.user, "alice");
        std::thread::sleep(Duration::from_millis(40));
        assert!(s.get(&h).is_none());
    }
}
