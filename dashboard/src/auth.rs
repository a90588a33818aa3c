//! Analyst login: argon2 password hashes, server-side sessions behind a random cookie, and a
//! CSRF token per session (and per login form) that every POST form must carry.

use std::collections::HashMap;
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use axum::http::HeaderMap;
use rand::RngCore;
use subtle::ConstantTimeEq;

use crate::config::LoginConfig;
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

/// Largest argon2 memory a check thread keeps for reuse, in 1 KiB blocks (256 MiB); a hash
/// asking for more is checked with memory of its own.
const MAX_KEPT_BLOCKS: usize = 256 * 1024;

/// [`verify_password`] with the argon2 memory in `memory`, grown as needed and kept for the
/// next check: allocating 19 MiB per check made the allocator hold on to most of every one
/// (the RSS rose by that much per check).
fn verify_with(memory: &mut Vec<argon2::Block>, hash: &str, password: &str) -> bool {
    let Ok(phc) = PasswordHash::new(hash) else {
        return false;
    };
    let (Ok(algorithm), Ok(params), Some(salt), Some(expected)) = (
        argon2::Algorithm::try_from(phc.algorithm),
        argon2::Params::try_from(&phc),
        phc.salt,
        phc.hash,
    ) else {
        return false;
    };
    let Ok(version) = phc
        .version
        .map(argon2::Version::try_from)
        .unwrap_or(Ok(argon2::Version::default()))
    else {
        return false;
    };
    let n = params.block_count();
    if n > MAX_KEPT_BLOCKS {
        return verify_password(hash, password);
    }
    let mut salt_buf = [0u8; 64];
    let Ok(salt) = salt.decode_b64(&mut salt_buf) else {
        return false;
    };
    if memory.len() < n {
        memory.resize(n, argon2::Block::default());
    }
    let mut out = vec![0u8; expected.len()];
    Argon2::new(algorithm, version, params)
        .hash_password_into_with_memory(password.as_bytes(), salt, &mut out, &mut memory[..n])
        .is_ok()
        && bool::from(out.as_slice().ct_eq(expected.as_bytes()))
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

/// A user name as it may appear in a log line: at most 64 characters, control and non-ASCII
/// characters escaped (`\n`, `\u{..}`), `…` appended when cut.
pub fn printable(name: &str) -> String {
    let mut out: String = name
        .chars()
        .take(64)
        .flat_map(char::escape_default)
        .collect();
    if name.chars().nth(64).is_some() {
        out.push('…');
    }
    out
}

type Keyed<K> = governor::DefaultKeyedRateLimiter<K>;

/// Most addresses and user names whose attempts are remembered; past it old quiet ones are
/// forgotten, and if all are recent further attempts are refused until some are.
const MAX_TRACKED: usize = 100_000;
/// How long an attempt waits for a password check slot before it is answered 503.
const CHECK_WAIT: Duration = Duration::from_secs(2);

/// Why a login attempt is not checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// Too many attempts from this address (or its IPv6 /64); retry after this long.
    Address(Duration),
    /// Too many attempts on this user name; retry after this long.
    User(Duration),
    /// Every password check slot is busy.
    Busy,
}

/// Throttling of login attempts: per client address and per user name (token buckets that
/// refill steadily, so a client that keeps failing waits longer and longer between tries), and
/// a bound on password checks running at once (each argon2 check takes about 19 MiB).
#[derive(Debug)]
pub struct LoginGuard {
    by_address: Keyed<IpAddr>,
    by_user: Keyed<String>,
    checks: tokio::sync::Semaphore,
    /// Work for the password check threads.
    jobs: std::sync::mpsc::SyncSender<Check>,
    /// User names (configured ones; all others share the empty name) with a check waiting or
    /// running: one at a time per name, so a flood on one name (or on made-up ones) holds at
    /// most one place in the queue and the other users' logins go through.
    in_flight: Mutex<std::collections::HashSet<String>>,
}

/// A counted login attempt that holds its user name's place in the check queue until dropped.
#[derive(Debug)]
pub struct Attempt<'a> {
    guard: &'a LoginGuard,
    key: String,
}

impl Drop for Attempt<'_> {
    fn drop(&mut self) {
        self.guard
            .in_flight
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&self.key);
    }
}

/// A hash, a password, and where the answer goes.
type Check = (Option<String>, String, tokio::sync::oneshot::Sender<bool>);

/// `n` threads that check passwords at a lower CPU priority (nice 10), so that a run of
/// checks never starves the request handlers of the machine's cores; a fixed set of threads
/// also keeps the argon2 memory in a fixed set of malloc arenas.
fn checkers(n: usize) -> std::sync::mpsc::SyncSender<Check> {
    let (tx, rx) = std::sync::mpsc::sync_channel::<Check>(n);
    let rx = std::sync::Arc::new(Mutex::new(rx));
    for i in 0..n {
        let rx = rx.clone();
        let spawned = std::thread::Builder::new()
            .name(format!("password-check-{i}"))
            .spawn(move || {
                // SAFETY: setpriority has no memory effects; on Linux, PRIO_PROCESS with id 0
                // sets the nice value of the calling thread only.
                unsafe {
                    libc::setpriority(libc::PRIO_PROCESS, 0, 10);
                }
                let mut memory = Vec::new();
                loop {
                    let job = rx.lock().unwrap_or_else(|e| e.into_inner()).recv();
                    let Ok((hash, password, answer)) = job else {
                        return;
                    };
                    // The dummy hash is made (once, 20 ms to 1 s) here, never on a runtime
                    // thread: that stalled every request while it ran.
                    let known = hash.is_some();
                    let hash = hash.as_deref().unwrap_or_else(|| dummy_hash());
                    let _ = answer.send(verify_with(&mut memory, hash, &password) && known);
                }
            });
        if let Err(e) = spawned {
            tracing::error!(error = %e, "Starting a password check thread failed");
        }
    }
    tx
}

fn quota(burst: u32, per_minute: u32) -> governor::Quota {
    let one = NonZeroU32::MIN;
    governor::Quota::with_period(Duration::from_secs(60) / per_minute.max(1))
        .unwrap_or_else(|| governor::Quota::per_minute(one))
        .allow_burst(NonZeroU32::new(burst).unwrap_or(one))
}

/// The key of an address: IPv4 as is, IPv6 by its /64 (one host usually owns a whole /64).
fn address_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let s = v6.segments();
                IpAddr::V6(std::net::Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
            }
        },
    }
}

fn take<K: std::hash::Hash + Eq + Clone>(limiter: &Keyed<K>, key: &K) -> Option<Duration> {
    if limiter.len() >= MAX_TRACKED {
        limiter.retain_recent();
        limiter.shrink_to_fit();
        if limiter.len() >= MAX_TRACKED {
            return Some(Duration::from_secs(60));
        }
    }
    use governor::clock::Clock;
    limiter
        .check_key(key)
        .err()
        .map(|not_until| not_until.wait_time_from(governor::clock::DefaultClock::default().now()))
}

impl LoginGuard {
    /// A guard with the limits of `[login]`.
    pub fn new(cfg: &LoginConfig) -> LoginGuard {
        LoginGuard {
            by_address: governor::RateLimiter::keyed(quota(
                cfg.address_burst,
                cfg.address_per_minute,
            )),
            by_user: governor::RateLimiter::keyed(quota(cfg.user_burst, cfg.user_per_minute)),
            checks: tokio::sync::Semaphore::new(cfg.max_checks),
            jobs: checkers(cfg.max_checks),
            in_flight: Mutex::default(),
        }
    }

    /// Counts an attempt from `ip` on `user` and says whether it may go on. Names that are not
    /// configured users share one bucket, so made-up names cannot grow the table. While a
    /// check on the same name is waiting or running, the attempt is refused (`User`, 1 s).
    pub fn attempt(
        &self,
        ip: IpAddr,
        user: &str,
        known: bool,
    ) -> std::result::Result<Attempt<'_>, Refusal> {
        if let Some(wait) = take(&self.by_address, &address_key(ip)) {
            return Err(Refusal::Address(wait));
        }
        let key = if known {
            user.to_owned()
        } else {
            String::new()
        };
        if let Some(wait) = take(&self.by_user, &key) {
            return Err(Refusal::User(wait));
        }
        let mut in_flight = self.in_flight.lock().unwrap_or_else(|e| e.into_inner());
        if !in_flight.insert(key.clone()) {
            return Err(Refusal::User(Duration::from_secs(1)));
        }
        Ok(Attempt { guard: self, key })
    }

    /// Runs a password check on a check thread when a slot is free (waiting at most 2 s for
    /// one).
    /// `None`: the user is unknown; a dummy hash is checked instead (and the answer is false).
    pub async fn verify(
        &self,
        _attempt: Attempt<'_>,
        hash: Option<String>,
        password: String,
    ) -> std::result::Result<bool, Refusal> {
        let permit = tokio::time::timeout(CHECK_WAIT, self.checks.acquire())
            .await
            .map_err(|_| Refusal::Busy)?
            .map_err(|_| Refusal::Busy)?;
        let (answer, ok) = tokio::sync::oneshot::channel();
        self.jobs
            .try_send((hash, password, answer))
            .map_err(|_| Refusal::Busy)?;
        let ok = ok.await.unwrap_or(false);
        drop(permit);
        Ok(ok)
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
        let mut memory = Vec::new();
        assert!(verify_with(&mut memory, &h, "correct horse"));
        assert!(!verify_with(&mut memory, &h, "wrong"));
        assert!(!verify_with(&mut memory, "garbage", "correct horse"));
        assert_eq!(memory.len(), 19456, "the default 19 MiB, kept");
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
    fn names_in_logs_are_escaped_and_cut() {
        assert_eq!(printable("alice"), "alice");
        assert_eq!(printable("a\nb\u{1b}[31m"), "a\\nb\\u{1b}[31m");
        let long = "x".repeat(1000);
        assert_eq!(printable(&long), format!("{}…", "x".repeat(64)));
    }

    #[test]
    fn attempts_are_throttled_per_address_and_user() {
        let cfg = LoginConfig {
            address_burst: 3,
            address_per_minute: 1,
            user_burst: 2,
            user_per_minute: 1,
            max_checks: 1,
        };
        let g = LoginGuard::new(&cfg);
        let a: IpAddr = "198.18.0.1".parse().unwrap();
        let b: IpAddr = "198.18.0.2".parse().unwrap();
        assert!(g.attempt(a, "bob", true).is_ok());
        assert!(g.attempt(a, "bob", true).is_ok());
        // bob's bucket is empty, from any address.
        assert!(
            matches!(g.attempt(b, "bob", true), Err(Refusal::User(w)) if w > Duration::from_secs(50))
        );
        // a's third attempt passes its own bucket; the fourth does not.
        assert!(g.attempt(a, "alice", true).is_ok());
        assert!(matches!(
            g.attempt(a, "alice", true),
            Err(Refusal::Address(_))
        ));
        // Made-up names share one bucket, apart from real users.
        let c: IpAddr = "198.18.0.3".parse().unwrap();
        let d: IpAddr = "198.18.0.4".parse().unwrap();
        assert!(g.attempt(c, "nobody-1", false).is_ok());
        assert!(g.attempt(c, "nobody-2", false).is_ok());
        assert!(matches!(
            g.attempt(d, "nobody-3", false),
            Err(Refusal::User(_))
        ));
        assert!(g.attempt(d, "alice", true).is_ok());
        // One IPv6 /64 is one address.
        let v6 = |s: &str| s.parse::<IpAddr>().unwrap();
        assert_eq!(
            address_key(v6("2001:db8::1")),
            address_key(v6("2001:db8::ffff:2"))
        );
        assert_ne!(
            address_key(v6("2001:db8::1")),
            address_key(v6("2001:db8:0:1::1"))
        );
    }

    #[tokio::test]
    async fn password_checks_are_bounded() {
        let cfg = LoginConfig {
            max_checks: 1,
            ..LoginConfig::default()
        };
        let g = std::sync::Arc::new(LoginGuard::new(&cfg));
        let hash = hash_password("pw").unwrap();
        let ip: IpAddr = "198.18.0.1".parse().unwrap();
        let at = |user: &str, known| g.attempt(ip, user, known).unwrap();
        assert_eq!(
            g.verify(at("a", true), Some(hash.clone()), "pw".into())
                .await,
            Ok(true)
        );
        assert_eq!(g.verify(at("x", false), None, "pw".into()).await, Ok(false));
        assert_eq!(
            g.verify(at("y", false), None, "not a password".into())
                .await,
            Ok(false)
        );
        let _held = g.checks.acquire().await.unwrap();
        assert_eq!(
            g.verify(at("a", true), Some(hash), "pw".into()).await,
            Err(Refusal::Busy)
        );
    }

    #[test]
    fn one_check_at_a_time_per_user_name() {
        let g = LoginGuard::new(&LoginConfig::default());
        let ip = |i: u8| IpAddr::from([198, 18, 0, i]);
        let bob = g.attempt(ip(1), "bob", true).unwrap();
        assert!(matches!(
            g.attempt(ip(2), "bob", true),
            Err(Refusal::User(w)) if w == Duration::from_secs(1)
        ));
        let made_up = g.attempt(ip(3), "guess-1", false).unwrap();
        assert!(matches!(
            g.attempt(ip(4), "guess-2", false),
            Err(Refusal::User(_))
        ));
        // Another user's attempt is not held up by either.
        assert!(g.attempt(ip(5), "alice", true).is_ok());
        drop((bob, made_up));
        assert!(g.attempt(ip(6), "bob", true).is_ok());
        assert!(g.attempt(ip(7), "guess-3", false).is_ok());
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
