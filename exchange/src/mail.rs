//! The one mail module: partners' daily files ([`compose`]) and the investigation's plain-text
//! mails ([`text`]), both sent by [`send`] through `[exchange.smtp]`.
//!
//! E-mail delivery of a partner's day, as national CSIRTs receive Shadowserver's reports: one
//! message to the partner's `mail_to`, through the submission server of `[exchange.smtp]`
//! (STARTTLS or TLS required, AUTH only over TLS; lettre), with every file of the day gzipped
//! and attached, the day's index beside them, and a text part that lists each file with its
//! format, record count and SHA-256.
//!
//! With `exchange.signing_key` the message is signed as PGP/MIME (RFC 3156): a
//! `multipart/signed; protocol="application/pgp-signature"; micalg=pgp-sha256` whose first
//! part is the `multipart/mixed` above, exactly as sent (CRLF lines, every body 7-bit or
//! base64), and whose second part is a detached signature of that part's bytes, so a
//! partner's mail client or `gpg --verify` checks the whole message. A file whose gzipped
//! size would take the message over `max_message_bytes` is listed, not attached (it stays in
//! the outbox, and in the partner's download listing).

use std::io::{Read, Write};
use std::path::Path;

use lettre::message::header::ContentType;
use lettre::message::{Attachment, Message, MultiPart, SinglePart};
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
use lettre::{SmtpTransport, Transport};

use super::config::{Exchange, Partner, Security, Smtp};
use super::export::DayIndex;

/// One attachment, or why a file was left out.
enum Item {
    Attached { name: String, gzipped: Vec<u8> },
    Left { reason: String },
}

/// The file gzipped in memory, or None when it would be larger than `budget` bytes.
fn gzip_within(path: &Path, budget: u64) -> Result<Option<Vec<u8>>, String> {
    let mut f =
        std::fs::File::open(path).map_err(|e| format!("cannot open {}: {e}", path.display()))?;
    if path.extension().is_some_and(|e| e == "gz") {
        let len = f.metadata().map(|m| m.len()).unwrap_or(u64::MAX);
        if len > budget {
            return Ok(None);
        }
        let mut v = Vec::with_capacity(len as usize);
        f.read_to_end(&mut v)
            .map_err(|e| format!("reading {}: {e}", path.display()))?;
        return Ok(Some(v));
    }
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = f
            .read(&mut buf)
            .map_err(|e| format!("reading {}: {e}", path.display()))?;
        if n == 0 {
            break;
        }
        gz.write_all(&buf[..n])
            .map_err(|e| format!("compressing {}: {e}", path.display()))?;
        if gz.get_ref().len() as u64 > budget {
            return Ok(None);
        }
    }
    let v = gz
        .finish()
        .map_err(|e| format!("compressing {}: {e}", path.display()))?;
    Ok((v.len() as u64 <= budget).then_some(v))
}

/// Base64 lines of 76 characters with CRLF: what an attachment of `n` bytes costs.
fn encoded_len(n: u64) -> u64 {
    let b64 = n.div_ceil(3) * 4;
    b64 + b64.div_ceil(76) * 2 + 512
}

/// The message of a partner's day: `index` lists the files in `dir`.
pub fn compose(
    x: &Exchange,
    smtp: &Smtp,
    partner: &Partner,
    dir: &Path,
    index: &DayIndex,
    index_file: &Path,
) -> Result<Message, String> {
    let mut budget = smtp.max_message_bytes.saturating_sub(16 << 10);
    let mut items = Vec::new();
    let index_bytes = std::fs::read(index_file)
        .map_err(|e| format!("cannot read {}: {e}", index_file.display()))?;
    budget = budget.saturating_sub(encoded_len(index_bytes.len() as u64));
    for f in &index.files {
        let path = dir.join(&f.file);
        let name = if f.file.ends_with(".gz") {
            f.file.clone()
        } else {
            format!("{}.gz", f.file)
        };
        // The raw budget left once base64 has grown it.
        let raw_budget = budget.saturating_sub(budget / 76 * 2 + 512) / 4 * 3;
        match gzip_within(&path, raw_budget)? {
            Some(gzipped) => {
                budget = budget.saturating_sub(encoded_len(gzipped.len() as u64));
                items.push(Item::Attached { name, gzipped });
            }
            None => items.push(Item::Left {
                reason: format!(
                    "not attached: larger than this message may be ({} bytes uncompressed); \
                     it is in your download listing",
                    f.bytes
                ),
            }),
        }
    }

    let mut text = format!(
        "Daily scan report of {csirt} for {name} ({id}), {date}.\r\n\r\n\
         Sources of scans seen by our sensors, from your constituency. The sensor addresses are\r\n\
         never included. Each file is attached gzipped; the SHA-256 is of the file itself.\r\n\r\n",
        csirt = x.config.csirt,
        name = partner.name,
        id = partner.id,
        date = index.date,
    );
    for (f, item) in index.files.iter().zip(&items) {
        text.push_str(&format!(
            "  {}\r\n    format {}, records per {}, revision {}, {} bytes\r\n    sha256 {}\r\n",
            f.file, f.format, f.records, f.revision, f.bytes, f.sha256
        ));
        if let Item::Left { reason, .. } = item {
            text.push_str(&format!("    {reason}\r\n"));
        }
    }
    if let Some(s) = &x.signer {
        text.push_str(&format!(
            "\r\nThis message is signed with OpenPGP (PGP/MIME) by key {}",
            s.primary_fingerprint()
        ));
        if s.fingerprint() != s.primary_fingerprint() {
            text.push_str(&format!(" (signing subkey {})", s.fingerprint()));
        }
        text.push_str(".\r\n");
    }
    let mut mixed = MultiPart::mixed().singlepart(SinglePart::plain(text));
    for item in items {
        if let Item::Attached { name, gzipped } = item {
            mixed = mixed.singlepart(
                Attachment::new(name)
                    .body(gzipped, ContentType::parse("application/gzip").unwrap()),
            );
        }
    }
    let index_name = index_file
        .file_name()
        .unwrap_or_default()
        .to_string_lossy()
        .into_owned();
    mixed = mixed.singlepart(
        Attachment::new(index_name)
            .body(index_bytes, ContentType::parse("application/json").unwrap()),
    );

    let body = match &x.signer {
        Some(signer) => {
            // RFC 3156: the signature covers the first part as sent, up to (not including)
            // the CRLF that belongs to the boundary after it.
            let bytes = mixed.formatted();
            let signed = bytes.strip_suffix(b"\r\n").unwrap_or(&bytes);
            let armour = signer.sign(signed).map_err(|e| e.to_string())?;
            MultiPart::signed(
                "application/pgp-signature".to_owned(),
                "pgp-sha256".to_owned(),
            )
            .multipart(mixed)
            .singlepart(
                SinglePart::builder()
                    .header(
                        ContentType::parse("application/pgp-signature; name=\"signature.asc\"")
                            .unwrap(),
                    )
                    .body(armour),
            )
        }
        None => mixed,
    };
    let mut b = Message::builder().from(smtp.from.clone()).subject(format!(
        "[{}] Daily scan report {} for {}",
        x.config.csirt, index.date, partner.name
    ));
    for to in &partner.mail_to {
        b = b.to(to.clone());
    }
    b.multipart(body)
        .map_err(|e| format!("composing the message: {e}"))
}

/// The transport of `[exchange.smtp]`.
fn transport(smtp: &Smtp) -> Result<SmtpTransport, String> {
    let mut b = SmtpTransport::builder_dangerous(smtp.server.as_str())
        .port(smtp.port)
        .timeout(Some(smtp.timeout));
    if smtp.security != Security::None {
        let mut tls = TlsParameters::builder(smtp.server.clone());
        if let Some(ca) = &smtp.ca_file {
            let pem = std::fs::read(ca)
                .map_err(|e| format!("cannot read exchange.smtp.ca_file {}: {e}", ca.display()))?;
            let cert = Certificate::from_pem(&pem)
                .map_err(|e| format!("exchange.smtp.ca_file {}: {e}", ca.display()))?;
            tls = tls.add_root_certificate(cert);
        }
        let tls = tls
            .build()
            .map_err(|e| format!("TLS for {}: {e}", smtp.server))?;
        b = b.tls(match smtp.security {
            Security::Tls => Tls::Wrapper(tls),
            _ => Tls::Required(tls),
        });
    }
    if let Some((user, file)) = &smtp.login {
        let text = std::fs::read_to_string(file).map_err(|e| {
            format!(
                "cannot read exchange.smtp.password_file {}: {e}",
                file.display()
            )
        })?;
        let password = text.lines().next().unwrap_or("").to_owned();
        b = b.credentials(Credentials::new(user.clone(), password));
    }
    Ok(b.build())
}

/// A plain-text message from `[exchange.smtp]`'s From to `to` (with `cc`), as the
/// investigation of reports sends them ([`crate::cases`]).
pub fn text(
    smtp: &Smtp,
    to: &[lettre::message::Mailbox],
    cc: &[lettre::message::Mailbox],
    subject: &str,
    body: String,
) -> Result<Message, String> {
    let mut b = Message::builder()
        .from(smtp.from.clone())
        .subject(subject)
        .header(ContentType::TEXT_PLAIN);
    if to.is_empty() {
        return Err("a message needs a recipient".into());
    }
    for m in to {
        b = b.to(m.clone());
    }
    for m in cc {
        b = b.cc(m.clone());
    }
    b.body(body)
        .map_err(|e| format!("composing \"{subject}\": {e}"))
}

/// Sends `message`; the error names the server and what it answered.
pub fn send(smtp: &Smtp, message: &Message) -> Result<String, String> {
    let t = transport(smtp)?;
    let where_ = format!("smtp://{}:{}", smtp.server, smtp.port);
    match t.send(message) {
        Ok(r) => Ok(format!(
            "{where_} answered {} {}",
            r.code(),
            r.message().collect::<Vec<_>>().join(" ")
        )),
        Err(e) => Err(format!("{where_}: {e}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_base64_cost_is_never_underestimated() {
        for n in [0u64, 1, 2, 3, 57, 1000, 1 << 20] {
            let b64 = (n as f64 / 3.0).ceil() as u64 * 4;
            let lines = (b64 as f64 / 76.0).ceil() as u64;
            assert!(encoded_len(n) >= b64 + lines * 2, "{n}");
        }
    }

    #[test]
    fn a_file_over_the_budget_is_left_out() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f.jsonl");
        // Incompressible enough: a counter's hashes.
        let mut text = String::new();
        for i in 0..20_000u32 {
            text.push_str(&format!("{:x}\n", i.wrapping_mul(2_654_435_761)));
        }
        std::fs::write(&p, &text).unwrap();
        assert!(gzip_within(&p, 1000).unwrap().is_none());
        let all = gzip_within(&p, 1 << 20).unwrap().unwrap();
        let mut back = String::new();
        flate2::read::GzDecoder::new(&all[..])
            .read_to_string(&mut back)
            .unwrap();
        assert_eq!(back, text);
    }
}
