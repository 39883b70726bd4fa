//! Every random value ssfd creates comes from here: stream ids, SET `jti`s, key ids, secrets.
//! All are drawn from the operating system's CSPRNG and encoded with RFC 3986 unreserved
//! characters only (SSF 1.0 §8.1.1 asks this of `stream_id`), so they are safe in URLs.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use rand::rngs::OsRng;
use rand::RngCore as _;

/// 128 random bits as 32 lower-case hex characters: stream ids, `jti`s, key ids.
pub fn new_id() -> String {
    let mut bytes = [0u8; 16];
    OsRng.fill_bytes(&mut bytes);
    hex::encode(bytes)
}

/// 256 random bits, base64url without padding: client secrets, bearer tokens, push secrets.
pub fn new_secret() -> String {
    let mut bytes = [0u8; 32];
    OsRng.fill_bytes(&mut bytes);
    URL_SAFE_NO_PAD.encode(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_unreserved_and_distinct() {
        let (a, b) = (new_id(), new_id());
        assert_eq!(a.len(), 32);
        assert_ne!(a, b);
        let unreserved = |c: char| c.is_ascii_alphanumeric() || "-._~".contains(c);
        assert!(a.chars().all(unreserved));
        let secret = new_secret();
        assert_eq!(secret.len(), 43);
        assert!(secret.chars().all(unreserved));
    }
}
