//! `[exchange.cases.ldap]`: the employee directory on an LDAP server (the `ldap3` crate,
//! rustls with ring), asked once per new case instead of the directory file.
//!
//! A lookup opens one connection (`ldap://`, `ldaps://` or `ldap://` with StartTLS), binds
//! (simple bind with `bind_dn`, or anonymously), searches `base_dn` (whole subtree) with
//! `host_filter`, `{host}` replaced by the host escaped as RFC 4515 asks (so a host such as
//! `*)(uid=*` is a literal and matches nothing), reads the manager's entry (the DN in the
//! manager attribute) for their address, unbinds and closes. The whole lookup has
//! `timeout_secs`. A host name is looked up without a trailing dot and an address in its
//! canonical form (`2001:db8::17`).
//!
//! What a lookup finds:
//! - exactly one entry, with a uid, a name and an address: that employee;
//! - no entry, several entries (nobody is guessed: the case says which), or an entry
//!   without a uid, name or usable address: nobody, with the reason (the case is opened
//!   without an employee and the CSIRT is alerted at once, as for an unknown host);
//! - the server unreachable, the bind refused, a timeout, any other error: an error; the
//!   report stays without a case until a later round finds the server working.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use ldap3::{LdapConnAsync, LdapConnSettings, Scope, SearchEntry, SearchOptions};
use serde::Deserialize;
use teiten_store::{Error, Result};

use super::directory::{Found, Person};
use crate::AbortOnDrop;

/// Entries a search reads at most: more matches of one host are "several" anyway.
const MAX_MATCHES: i32 = 8;

/// `[exchange.cases.ldap]`. With it, `exchange.cases.directory` is not used (setting both is
/// an error).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LdapConfig {
    /// The server: `ldap://host[:port]` or `ldaps://host[:port]`. Required.
    pub url: String,
    /// Upgrade an `ldap://` connection with StartTLS (required to succeed). Default false.
    #[serde(default)]
    pub starttls: bool,
    /// Extra CA certificates (PEM) trusted for the server (`ldaps://` or StartTLS). Default:
    /// the system's roots.
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// The DN to bind as (simple bind). Default none: anonymous.
    #[serde(default)]
    pub bind_dn: Option<String>,
    /// A file whose first line is `bind_dn`'s password. Required with `bind_dn`.
    #[serde(default)]
    pub bind_password_file: Option<PathBuf>,
    /// Where employees are searched (the whole subtree). Required.
    pub base_dn: String,
    /// The filter of the employee on a host; `{host}` is replaced by the host (a name or an
    /// address), escaped. Default
    /// `(&(objectClass=inetOrgPerson)(|(host={host})(ipHostNumber={host})))`: `host`
    /// (cosine) holds host names and `ipHostNumber` (nis) addresses, as the stock schemas
    /// define them.
    #[serde(default = "default_host_filter")]
    pub host_filter: String,
    /// The attribute of the user id. Default `uid`.
    #[serde(default = "default_uid")]
    pub uid_attribute: String,
    /// The attribute of the name. Default `cn`.
    #[serde(default = "default_name")]
    pub name_attribute: String,
    /// The attribute of the e-mail address (also read from the manager's entry). Default
    /// `mail`.
    #[serde(default = "default_mail")]
    pub mail_attribute: String,
    /// The attribute of the department. Default `departmentNumber`.
    #[serde(default = "default_department")]
    pub department_attribute: String,
    /// The attribute holding the DN of the employee's manager. Default `manager`.
    #[serde(default = "default_manager")]
    pub manager_attribute: String,
    /// How long one lookup (connecting, binding, both searches) may take, in seconds.
    /// Default 10.
    #[serde(default = "default_timeout")]
    pub timeout_secs: u64,
}

/// The default `host_filter`.
pub const DEFAULT_HOST_FILTER: &str =
    "(&(objectClass=inetOrgPerson)(|(host={host})(ipHostNumber={host})))";

fn default_host_filter() -> String {
    DEFAULT_HOST_FILTER.into()
}
fn default_uid() -> String {
    "uid".into()
}
fn default_name() -> String {
    "cn".into()
}
fn default_mail() -> String {
    "mail".into()
}
fn default_department() -> String {
    "departmentNumber".into()
}
fn default_manager() -> String {
    "manager".into()
}
fn default_timeout() -> u64 {
    10
}

fn bad(field: &'static str, reason: impl Into<String>) -> Error {
    Error::ConfigInvalid {
        field,
        reason: reason.into(),
    }
}

/// An LDAP attribute description: a name or a numeric OID.
fn is_attribute(s: &str) -> bool {
    let mut b = s.bytes();
    match b.next() {
        Some(c) if c.is_ascii_alphabetic() => {
            s.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'-')
        }
        Some(c) if c.is_ascii_digit() => s.bytes().all(|c| c.is_ascii_digit() || c == b'.'),
        _ => false,
    }
}

impl LdapConfig {
    /// Checks the settings, reads the password file and the CA file; connects to nothing.
    pub fn check(&self) -> Result<LdapDirectory> {
        let url = url::Url::parse(&self.url)
            .map_err(|e| bad("exchange.cases.ldap.url", format!("`{}`: {e}", self.url)))?;
        let tls = match url.scheme() {
            "ldaps" => true,
            "ldap" => false,
            other => {
                return Err(bad(
                    "exchange.cases.ldap.url",
                    format!("`{}`: the scheme `{other}` is not ldap or ldaps", self.url),
                ))
            }
        };
        if url.host_str().unwrap_or("").is_empty()
            || !matches!(url.path(), "" | "/")
            || url.query().is_some()
            || url.fragment().is_some()
            || !url.username().is_empty()
        {
            return Err(bad(
                "exchange.cases.ldap.url",
                format!(
                    "`{}` is not ldap[s]://host[:port] (the base DN and the filter are keys \
                     of their own)",
                    self.url
                ),
            ));
        }
        if self.starttls && tls {
            return Err(bad(
                "exchange.cases.ldap.starttls",
                "an ldaps:// connection is TLS already",
            ));
        }
        let secure = tls || self.starttls;
        if self.ca_file.is_some() && !secure {
            return Err(bad(
                "exchange.cases.ldap.ca_file",
                "only used over TLS: an ldaps:// url or starttls = true",
            ));
        }
        let tls_config = if secure {
            Some(tls_config(self.ca_file.as_deref())?)
        } else {
            None
        };
        let bind = match (&self.bind_dn, &self.bind_password_file) {
            (Some(dn), Some(p)) => {
                if dn.trim().is_empty() {
                    return Err(bad("exchange.cases.ldap.bind_dn", "is empty"));
                }
                let text = std::fs::read_to_string(p).map_err(|e| {
                    bad(
                        "exchange.cases.ldap.bind_password_file",
                        format!("{}: {e}", p.display()),
                    )
                })?;
                let password = text.lines().next().unwrap_or("").to_owned();
                if password.is_empty() {
                    // An empty password is an unauthenticated bind (RFC 4513 5.1.2), which
                    // servers may let through as anonymous.
                    return Err(bad(
                        "exchange.cases.ldap.bind_password_file",
                        format!("{}: the first line holds no password", p.display()),
                    ));
                }
                // ldap: is not a special scheme: an IPv4 address is a "domain" to `url`.
                let loopback = match url.host() {
                    Some(url::Host::Ipv4(a)) => a.is_loopback(),
                    Some(url::Host::Ipv6(a)) => a.is_loopback(),
                    Some(url::Host::Domain(d)) => {
                        d.eq_ignore_ascii_case("localhost")
                            || d.parse::<std::net::IpAddr>().is_ok_and(|a| a.is_loopback())
                    }
                    None => false,
                };
                if !secure && !loopback {
                    return Err(bad(
                        "exchange.cases.ldap.bind_dn",
                        "the password is only sent over TLS (an ldaps:// url or starttls = \
                         true), or to a server on loopback",
                    ));
                }
                Some((dn.clone(), password))
            }
            (None, None) => None,
            (Some(_), None) => {
                return Err(bad(
                    "exchange.cases.ldap.bind_password_file",
                    "required with exchange.cases.ldap.bind_dn",
                ))
            }
            (None, Some(_)) => {
                return Err(bad(
                    "exchange.cases.ldap.bind_dn",
                    "required with exchange.cases.ldap.bind_password_file",
                ))
            }
        };
        if self.base_dn.trim().is_empty() {
            return Err(bad("exchange.cases.ldap.base_dn", "is empty"));
        }
        if !self.host_filter.contains("{host}") {
            return Err(bad(
                "exchange.cases.ldap.host_filter",
                format!("`{}` has no {{host}}", self.host_filter),
            ));
        }
        let sample = fill(&self.host_filter, "pc-1.example");
        if ldap3::parse_filter(&sample).is_err() {
            return Err(bad(
                "exchange.cases.ldap.host_filter",
                format!("`{}` is not an LDAP filter (RFC 4515)", self.host_filter),
            ));
        }
        for (field, v) in [
            ("exchange.cases.ldap.uid_attribute", &self.uid_attribute),
            ("exchange.cases.ldap.name_attribute", &self.name_attribute),
            ("exchange.cases.ldap.mail_attribute", &self.mail_attribute),
            (
                "exchange.cases.ldap.department_attribute",
                &self.department_attribute,
            ),
            (
                "exchange.cases.ldap.manager_attribute",
                &self.manager_attribute,
            ),
        ] {
            if !is_attribute(v) {
                return Err(bad(field, format!("`{v}` is not an attribute name")));
            }
        }
        if self.timeout_secs == 0 {
            return Err(bad(
                "exchange.cases.ldap.timeout_secs",
                "must be at least 1",
            ));
        }
        Ok(LdapDirectory(Arc::new(Inner {
            config: self.clone(),
            tls: tls_config,
            bind,
            timeout: Duration::from_secs(self.timeout_secs),
        })))
    }
}

/// The TLS settings: the system's roots and the CA file's certificates.
fn tls_config(ca_file: Option<&std::path::Path>) -> Result<Arc<rustls::ClientConfig>> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::CertificateDer;
    let mut roots = rustls::RootCertStore::empty();
    // Certificates of the system store that rustls cannot use are skipped, as rustls does.
    let system = rustls_native_certs::load_native_certs();
    roots.add_parsable_certificates(system.certs);
    if let Some(path) = ca_file {
        let f = |reason: String| bad("exchange.cases.ldap.ca_file", reason);
        let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(path)
            .map_err(|e| f(format!("{}: {e}", path.display())))?
            .collect::<std::result::Result<_, _>>()
            .map_err(|e| f(format!("{}: a malformed certificate: {e}", path.display())))?;
        if certs.is_empty() {
            return Err(f(format!("{}: holds no certificate", path.display())));
        }
        for cert in certs {
            roots
                .add(cert)
                .map_err(|e| f(format!("{}: certificate refused: {e}", path.display())))?;
        }
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| bad("exchange.cases.ldap.url", format!("TLS versions: {e}")))?
    .with_root_certificates(roots)
    .with_no_client_auth();
    Ok(Arc::new(config))
}

/// `host_filter` for `host`, which is escaped (RFC 4515: `*`, `(`, `)`, `\`, NUL).
fn fill(filter: &str, host: &str) -> String {
    filter.replace("{host}", &ldap3::ldap_escape(host))
}

/// A host as it is looked up: a name without its trailing dot, an address in its canonical
/// form.
fn normalise(host: &str) -> String {
    let h = host.trim();
    match h.parse::<std::net::IpAddr>() {
        Ok(a) => a.to_string(),
        Err(_) => h.trim_end_matches('.').to_owned(),
    }
}

/// A lookup that failed: the report waits for a later round.
#[derive(Debug, Clone, thiserror::Error)]
#[error("the LDAP directory {url}: {what}: {reason}")]
pub struct LookupError {
    url: String,
    what: String,
    reason: String,
}

/// `[exchange.cases.ldap]` checked, with the bind password (never in `Debug`).
#[derive(Clone)]
pub struct LdapDirectory(Arc<Inner>);

struct Inner {
    config: LdapConfig,
    tls: Option<Arc<rustls::ClientConfig>>,
    bind: Option<(String, String)>,
    timeout: Duration,
}

impl std::fmt::Debug for LdapDirectory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the password.
        let c = &self.0.config;
        f.debug_struct("LdapDirectory")
            .field("url", &c.url)
            .field("starttls", &c.starttls)
            .field("bind_dn", &c.bind_dn)
            .field("base_dn", &c.base_dn)
            .field("host_filter", &c.host_filter)
            .finish_non_exhaustive()
    }
}

impl std::fmt::Display for LdapDirectory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "LDAP {} ({})", self.0.config.url, self.0.config.base_dn)
    }
}

impl LdapDirectory {
    /// Who works on `host`. Runs on its own task (a panic in the LDAP client is an error,
    /// not the end of the caller), with `timeout_secs` for all of it.
    pub async fn lookup(&self, host: &str) -> std::result::Result<Found, LookupError> {
        let host = normalise(host);
        let inner = self.0.clone();
        let h = host.clone();
        let mut task = AbortOnDrop(tokio::spawn(async move {
            match tokio::time::timeout(inner.timeout, inner.lookup(&h)).await {
                Ok(r) => r,
                Err(_) => Err(inner.error(
                    format!("looking up host {h}"),
                    format!("no answer within {} s", inner.config.timeout_secs),
                )),
            }
        }));
        match (&mut task.0).await {
            Ok(r) => r,
            Err(e) => Err(self.0.error(
                format!("looking up host {host}"),
                format!("the lookup failed: {e}"),
            )),
        }
    }
}

impl Inner {
    fn error(&self, what: String, reason: impl ToString) -> LookupError {
        LookupError {
            url: self.config.url.clone(),
            what,
            reason: reason.to_string(),
        }
    }

    async fn lookup(&self, host: &str) -> std::result::Result<Found, LookupError> {
        let mut settings = LdapConnSettings::new()
            .set_conn_timeout(self.timeout)
            .set_starttls(self.config.starttls);
        if let Some(tls) = &self.tls {
            settings = settings.set_config(tls.clone());
        }
        let (conn, mut ldap) = LdapConnAsync::with_settings(settings, &self.config.url)
            .await
            .map_err(|e| self.error("connecting".into(), e))?;
        // The connection is driven on a task of its own, which ends when `ldap` is dropped
        // (or is aborted with the guard, whatever happens first).
        let _driver = AbortOnDrop(tokio::spawn(async move {
            if let Err(e) = conn.drive().await {
                tracing::debug!(error = %e, "LDAP connection ended");
            }
        }));
        if let Some((dn, password)) = &self.bind {
            ldap.simple_bind(dn, password)
                .await
                .and_then(|r| r.success())
                .map_err(|e| self.error(format!("binding as {dn}"), e))?;
        }
        let found = self.find(&mut ldap, host).await;
        let _ = ldap.unbind().await;
        found
    }

    async fn find(
        &self,
        ldap: &mut ldap3::Ldap,
        host: &str,
    ) -> std::result::Result<Found, LookupError> {
        let c = &self.config;
        let what = || format!("looking up host {host}");
        let filter = fill(&c.host_filter, host);
        let attrs = [
            c.uid_attribute.as_str(),
            c.name_attribute.as_str(),
            c.mail_attribute.as_str(),
            c.department_attribute.as_str(),
            c.manager_attribute.as_str(),
        ];
        let ldap3::SearchResult(entries, result) = ldap
            .with_search_options(SearchOptions::new().sizelimit(MAX_MATCHES))
            .search(&c.base_dn, Scope::Subtree, &filter, attrs)
            .await
            .map_err(|e| self.error(what(), e))?;
        // sizeLimitExceeded: more than MAX_MATCHES, several anyway.
        if result.rc != 0 && result.rc != 4 {
            return Err(self.error(what(), ldap3::LdapError::from(result)));
        }
        let entries: Vec<SearchEntry> = entries.into_iter().map(SearchEntry::construct).collect();
        let e = match entries.as_slice() {
            [] => {
                return Ok(Found::Nobody(format!(
                    "no employee in the directory for host {host}"
                )))
            }
            [e] => e,
            several => {
                let dns: Vec<&str> = several.iter().map(|e| e.dn.as_str()).collect();
                return Ok(Found::Nobody(format!(
                    "host {host} is {}'s in the directory: nobody is asked",
                    dns.join(", ")
                )));
            }
        };
        let missing = |a: &str| {
            Found::Nobody(format!(
                "the directory entry {} of host {host} has no {a}",
                e.dn
            ))
        };
        let Some(uid) = first(e, &c.uid_attribute) else {
            return Ok(missing(&c.uid_attribute));
        };
        let Some(name) = first(e, &c.name_attribute) else {
            return Ok(missing(&c.name_attribute));
        };
        let Some(email) = first(e, &c.mail_attribute) else {
            return Ok(missing(&c.mail_attribute));
        };
        if let Err(err) = email.parse::<lettre::message::Mailbox>() {
            return Ok(Found::Nobody(format!(
                "the directory entry {} of host {host}: {} `{email}` is not an address: {err}",
                e.dn, c.mail_attribute
            )));
        }
        let manager_email = match first(e, &c.manager_attribute) {
            Some(dn) => self.manager_email(ldap, &e.dn, &dn).await?,
            None => String::new(),
        };
        Ok(Found::Employee(Person {
            uid,
            name,
            email,
            department: first(e, &c.department_attribute).unwrap_or_default(),
            manager_email,
        }))
    }

    /// The address in the manager's entry; empty (with a warning) when the entry is not there
    /// or has no usable address.
    async fn manager_email(
        &self,
        ldap: &mut ldap3::Ldap,
        employee: &str,
        dn: &str,
    ) -> std::result::Result<String, LookupError> {
        let c = &self.config;
        let what = || format!("reading the manager {dn} of {employee}");
        let ldap3::SearchResult(entries, result) = ldap
            .search(
                dn,
                Scope::Base,
                "(objectClass=*)",
                [c.mail_attribute.as_str()],
            )
            .await
            .map_err(|e| self.error(what(), e))?;
        // noSuchObject, invalidDNSyntax: the directory's data, not a failure to ask it.
        if result.rc == 32 || result.rc == 34 {
            tracing::warn!(employee, manager = dn, result = %result, "The manager of a directory entry is not in the directory");
            return Ok(String::new());
        }
        if result.rc != 0 {
            return Err(self.error(what(), ldap3::LdapError::from(result)));
        }
        let mail = entries
            .into_iter()
            .next()
            .and_then(|e| first(&SearchEntry::construct(e), &c.mail_attribute))
            .filter(|m| m.parse::<lettre::message::Mailbox>().is_ok());
        if mail.is_none() {
            tracing::warn!(
                employee,
                manager = dn,
                "The manager of a directory entry has no usable address"
            );
        }
        Ok(mail.unwrap_or_default())
    }
}

/// The first non-empty value of an attribute (names compare case-insensitively, as LDAP's).
fn first(e: &SearchEntry, attribute: &str) -> Option<String> {
    e.attrs
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(attribute))
        .and_then(|(_, v)| v.iter().find(|s| !s.trim().is_empty()))
        .map(|s| s.trim().to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(extra: &str) -> std::result::Result<LdapConfig, String> {
        toml::from_str(&format!(
            "url = \"ldap://127.0.0.1:3890\"\nbase_dn = \"dc=corp,dc=example\"\n{extra}"
        ))
        .map_err(|e| e.to_string())
    }

    fn check(extra: &str) -> std::result::Result<LdapDirectory, String> {
        config(extra)?.check().map_err(|e| e.to_string())
    }

    #[test]
    fn defaults() {
        let c = config("").unwrap();
        assert_eq!(c.host_filter, DEFAULT_HOST_FILTER);
        assert_eq!(
            [
                &c.uid_attribute,
                &c.name_attribute,
                &c.mail_attribute,
                &c.department_attribute,
                &c.manager_attribute
            ],
            ["uid", "cn", "mail", "departmentNumber", "manager"]
        );
        assert_eq!((c.starttls, c.timeout_secs), (false, 10));
        assert!(c.check().is_ok());
        let e = config("colour = \"red\"").unwrap_err();
        assert!(e.contains("unknown field `colour`"), "{e}");
        let e = toml::from_str::<LdapConfig>("url = \"ldap://x\"").unwrap_err();
        assert!(e.to_string().contains("missing field `base_dn`"), "{e}");
    }

    #[test]
    fn errors_name_the_key() {
        let dir = tempfile::tempdir().unwrap();
        let pw = dir.path().join("pw");
        let empty = dir.path().join("empty");
        let ca = dir.path().join("ca.pem");
        std::fs::write(&pw, "s3cret pw\nignored\n").unwrap();
        std::fs::write(&empty, "\nsecond\n").unwrap();
        std::fs::write(&ca, "not a certificate\n").unwrap();
        let (pw, empty, ca) = (pw.display(), empty.display(), ca.display());
        let over = |url: &str, extra: &str| {
            toml::from_str::<LdapConfig>(&format!(
                "url = \"{url}\"\nbase_dn = \"dc=corp,dc=example\"\n{extra}"
            ))
            .unwrap()
            .check()
            .map_err(|e| e.to_string())
        };
        let cases: Vec<(&str, std::result::Result<LdapDirectory, String>)> = vec![
            ("url", over("http://ldap.corp.example", "")),
            ("url", over("ldap://", "")),
            ("url", over("ldap://ldap.corp.example/dc=corp?cn", "")),
            ("url", over("not a url", "")),
            (
                "starttls",
                over("ldaps://ldap.corp.example", "starttls = true"),
            ),
            ("ca_file", check(&format!("ca_file = \"{ca}\""))),
            (
                "ca_file",
                over("ldaps://ldap.corp.example", &format!("ca_file = \"{ca}\"")),
            ),
            (
                "ca_file",
                over(
                    "ldaps://ldap.corp.example",
                    "ca_file = \"/nonexistent/ca.pem\"",
                ),
            ),
            ("bind_password_file", check("bind_dn = \"cn=teiten\"")),
            ("bind_dn", check(&format!("bind_password_file = \"{pw}\""))),
            (
                "bind_password_file",
                check("bind_dn = \"cn=t\"\nbind_password_file = \"/nonexistent/pw\""),
            ),
            (
                "bind_password_file",
                check(&format!(
                    "bind_dn = \"cn=t\"\nbind_password_file = \"{empty}\""
                )),
            ),
            (
                "bind_dn",
                over(
                    "ldap://ldap.corp.example",
                    &format!("bind_dn = \"cn=t\"\nbind_password_file = \"{pw}\""),
                ),
            ),
            (
                "base_dn",
                toml::from_str::<LdapConfig>("url = \"ldap://127.0.0.1\"\nbase_dn = \" \"")
                    .unwrap()
                    .check()
                    .map_err(|e| e.to_string()),
            ),
            ("host_filter", check("host_filter = \"(uid=tanaka)\"")),
            ("host_filter", check("host_filter = \"(host={host}\"")),
            (
                "host_filter",
                check("host_filter = \"(|(host={host})(cn=)\""),
            ),
            ("uid_attribute", check("uid_attribute = \"\"")),
            ("mail_attribute", check("mail_attribute = \"mail)(x\"")),
            ("manager_attribute", check("manager_attribute = \"a b\"")),
            ("timeout_secs", check("timeout_secs = 0")),
        ];
        for (key, r) in cases {
            let err = r.err().unwrap_or_else(|| panic!("{key}: passed"));
            assert!(
                err.starts_with(&format!(
                    "config field `exchange.cases.ldap.{key}` is invalid"
                )),
                "{key}: {err}"
            );
            assert!(!err.contains("s3cret"), "{err}");
        }
        // The password never in Debug; a password to loopback in clear is allowed (tests),
        // over TLS anywhere.
        let d = check(&format!(
            "bind_dn = \"cn=t\"\nbind_password_file = \"{pw}\""
        ))
        .unwrap();
        let shown = format!("{d:?} {d}");
        assert!(
            shown.contains("cn=t") && !shown.contains("s3cret"),
            "{shown}"
        );
        assert!(over(
            "ldaps://ldap.corp.example",
            &format!("bind_dn = \"cn=t\"\nbind_password_file = \"{pw}\"")
        )
        .is_ok());
        assert!(over(
            "ldap://ldap.corp.example",
            &format!("starttls = true\nbind_dn = \"cn=t\"\nbind_password_file = \"{pw}\"")
        )
        .is_ok());
        assert_eq!(d.0.bind.as_ref().unwrap().1, "s3cret pw", "the first line");
    }

    #[test]
    fn hosts_are_escaped_in_the_filter() {
        assert_eq!(
            fill(DEFAULT_HOST_FILTER, "pc-17.corp.example"),
            "(&(objectClass=inetOrgPerson)(|(host=pc-17.corp.example)(ipHostNumber=pc-17.corp.example)))"
        );
        let f = fill("(host={host})", "*)(uid=*");
        assert_eq!(f, r"(host=\2a\29\28uid=\2a)");
        assert!(ldap3::parse_filter(&f).is_ok());
        assert_eq!(fill("(host={host})", "a\\b\0"), r"(host=a\5cb\00)");
        assert_eq!(normalise("PC-17.corp.example."), "PC-17.corp.example");
        assert_eq!(normalise("2001:DB8:0::17"), "2001:db8::17");
        assert_eq!(normalise(" 10.20.0.17 "), "10.20.0.17");
    }

    #[tokio::test]
    async fn an_unreachable_server_is_an_error_within_the_timeout() {
        // A port nothing listens on: refused at once.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let d = toml::from_str::<LdapConfig>(&format!(
            "url = \"ldap://127.0.0.1:{port}\"\nbase_dn = \"dc=x\"\ntimeout_secs = 2"
        ))
        .unwrap()
        .check()
        .unwrap();
        let e = d.lookup("pc-1").await.unwrap_err().to_string();
        assert!(
            e.starts_with(&format!(
                "the LDAP directory ldap://127.0.0.1:{port}: connecting: "
            )),
            "{e}"
        );
        // A server that accepts and never answers: the timeout.
        let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = silent.local_addr().unwrap().port();
        let d = toml::from_str::<LdapConfig>(&format!(
            "url = \"ldap://127.0.0.1:{port}\"\nbase_dn = \"dc=x\"\ntimeout_secs = 1"
        ))
        .unwrap()
        .check()
        .unwrap();
        let start = std::time::Instant::now();
        let e = d.lookup("pc-1").await.unwrap_err().to_string();
        assert!(
            e.contains("looking up host pc-1: no answer within 1 s"),
            "{e}"
        );
        assert!(start.elapsed() < Duration::from_secs(5));
    }
}
