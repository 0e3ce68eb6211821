//! Tokens and scopes. A token is 256 random bits, shown once; only its SHA-256 is kept.
//! A fast hash is the right tool here: tokens are uniformly random, so there is nothing
//! to brute-force, and ingest must verify one per request.

use sha2::{Digest, Sha256};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Scope {
    /// May only send events.
    Ingest,
    /// May query events, sessions and errors.
    Read,
    /// May read and manage applications, tokens and schemas.
    Admin,
}

impl Scope {
    pub fn parse(value: &str) -> Option<Self> {
        match value {
            "ingest" => Some(Scope::Ingest),
            "read" => Some(Scope::Read),
            "admin" => Some(Scope::Admin),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Ingest => "ingest",
            Scope::Read => "read",
            Scope::Admin => "admin",
        }
    }

    /// Whether a token of this scope may do what `needed` requires. Admin implies read;
    /// nothing but an ingest token may ingest, so that a leaked read token cannot write.
    pub fn allows(self, needed: Scope) -> bool {
        self == needed || (self == Scope::Admin && needed == Scope::Read)
    }
}

/// The SHA-256 of a token, which is all the store keeps.
///
/// Equality takes the same time whatever the bytes: a lookup's timing tells nothing
/// about how much of a stored hash a presented one matched. (Even a leak would only
/// concern the hash of the caller's own input, but the comparison costs nothing.)
#[derive(Debug, Clone, Copy, Eq)]
pub struct TokenHash(pub [u8; 32]);

/// Hashes the same bytes that equality compares, so the two agree.
impl std::hash::Hash for TokenHash {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.0.hash(state);
    }
}

impl PartialEq for TokenHash {
    fn eq(&self, other: &Self) -> bool {
        let difference = self
            .0
            .iter()
            .zip(other.0.iter())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b));
        std::hint::black_box(difference) == 0
    }
}

impl TokenHash {
    pub fn of(token: &str) -> Self {
        TokenHash(Sha256::digest(token.as_bytes()).into())
    }
}

/// A freshly generated secret token: `eye_` + scope letter + `_` + 64 hex digits.
pub fn generate_token(scope: Scope) -> Result<String, getrandom::Error> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes)?;
    let prefix = match scope {
        Scope::Ingest => "eye_i_",
        Scope::Read => "eye_r_",
        Scope::Admin => "eye_a_",
    };
    let mut token = String::with_capacity(prefix.len() + 64);
    token.push_str(prefix);
    for b in bytes {
        token.push_str(&format!("{b:02x}"));
    }
    Ok(token)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_random_and_hash_stably() {
        let a = generate_token(Scope::Ingest).unwrap();
        let b = generate_token(Scope::Ingest).unwrap();
        assert_ne!(a, b);
        assert_eq!(a.len(), 70);
        assert!(a.starts_with("eye_i_"));
        assert_eq!(TokenHash::of(&a), TokenHash::of(&a));
        assert_ne!(TokenHash::of(&a), TokenHash::of(&b));
    }

    #[test]
    fn hashes_compare_equal_only_when_every_byte_matches() {
        let a = TokenHash::of("eye_i_a");
        assert_eq!(a, TokenHash::of("eye_i_a"));
        let mut last_byte = a;
        last_byte.0[31] ^= 1;
        assert_ne!(a, last_byte);
        let mut first_byte = a;
        first_byte.0[0] ^= 0x80;
        assert_ne!(a, first_byte);
    }

    #[test]
    fn scopes_do_not_leak_into_each_other() {
        assert!(Scope::Admin.allows(Scope::Read));
        assert!(!Scope::Read.allows(Scope::Ingest));
        assert!(!Scope::Ingest.allows(Scope::Read));
        assert!(!Scope::Admin.allows(Scope::Ingest));
        assert!(!Scope::Read.allows(Scope::Admin));
    }
}
