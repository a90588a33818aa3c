//! Bearer tokens as the configs store them: the SHA-256 of the token, in hex. The aggregator's
//! sensor and reporter tokens and the `/metrics` tokens of both servers are kept this way, so a
//! config file never holds a token that works.

use sha2::{Digest, Sha256};

/// The stored form of a token: its SHA-256, 64 lower-case hex digits
/// (`teiten-aggregator token-hash` prints it).
pub fn token_hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

#[cfg(test)]
mod tests {
    #[test]
    fn sha256_hex() {
        assert_eq!(
            super::token_hash("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
