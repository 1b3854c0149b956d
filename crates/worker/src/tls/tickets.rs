//! Session tickets every worker of a server can read, so that a client
//! resumes its TLS session on whichever worker the kernel hands its next
//! connection to (rustls' own ticketer makes its keys in each process).
//!
//! The supervisor makes a 32-byte secret before the first fork
//! ([`prepare`]); each worker inherits it. A ticket is sealed with
//! ChaCha20-Poly1305 under a key derived (HKDF-SHA256) from the secret and
//! the current period of [`LIFETIME`]; one from the period before still
//! opens, older ones do not. As with nginx's ticket keys, the keys live as
//! long as the server: a restart (or a binary upgrade) makes a new secret.

use std::sync::OnceLock;
use std::time::{SystemTime, UNIX_EPOCH};

use ring::aead::{Aad, CHACHA20_POLY1305, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use ring::hkdf::{HKDF_SHA256, Salt};
use ring::rand::{SecureRandom, SystemRandom};
use tokio_rustls::rustls::server::ProducesTickets;

/// How long one period's key seals tickets, in seconds; a ticket opens for
/// up to two periods.
pub(crate) const LIFETIME: u32 = 6 * 3600;

/// The server's ticket secret.
static SECRET: OnceLock<[u8; 32]> = OnceLock::new();

/// Makes the server's ticket secret, once, before the first fork; a worker
/// of a server that did not (a test's) makes its own.
pub fn prepare() {
    SECRET.get_or_init(random_secret);
}

fn random_secret() -> [u8; 32] {
    let mut secret = [0u8; 32];
    // The kernel's getrandom: it fails only where no randomness exists at
    // all, and then a zero secret only costs resumption across restarts.
    let _ = SystemRandom::new().fill(&mut secret);
    secret
}

/// Seals and opens the tickets of one worker with the server's secret.
pub(crate) struct SharedTickets {
    secret: [u8; 32],
    rng: SystemRandom,
}

impl std::fmt::Debug for SharedTickets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SharedTickets").finish_non_exhaustive()
    }
}

impl SharedTickets {
    pub(crate) fn new() -> Self {
        Self {
            secret: *SECRET.get_or_init(random_secret),
            rng: SystemRandom::new(),
        }
    }

    fn period(now: SystemTime) -> u64 {
        now.duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() / u64::from(LIFETIME))
    }

    /// The key of `period`.
    fn key(&self, period: u64) -> Option<LessSafeKey> {
        let prk = Salt::new(HKDF_SHA256, b"ferricorn session tickets").extract(&self.secret);
        let info = period.to_be_bytes();
        let info = [&info[..]];
        let okm = prk.expand(&info, &CHACHA20_POLY1305).ok()?;
        Some(LessSafeKey::new(UnboundKey::from(okm)))
    }

    pub(crate) fn seal(&self, plain: &[u8], now: SystemTime) -> Option<Vec<u8>> {
        let period = Self::period(now);
        let key = self.key(period)?;
        let mut nonce = [0u8; NONCE_LEN];
        self.rng.fill(&mut nonce).ok()?;
        let mut out = Vec::with_capacity(8 + NONCE_LEN + plain.len() + 16);
        out.extend_from_slice(&period.to_be_bytes());
        out.extend_from_slice(&nonce);
        let mut body = plain.to_vec();
        key.seal_in_place_append_tag(
            Nonce::assume_unique_for_key(nonce),
            Aad::from(period.to_be_bytes()),
            &mut body,
        )
        .ok()?;
        out.extend_from_slice(&body);
        Some(out)
    }

    pub(crate) fn open(&self, ticket: &[u8], now: SystemTime) -> Option<Vec<u8>> {
        let (head, rest) = ticket.split_at_checked(8)?;
        let (nonce, sealed) = rest.split_at_checked(NONCE_LEN)?;
        let period = u64::from_be_bytes(head.try_into().ok()?);
        let current = Self::period(now);
        if period != current && period.checked_add(1) != Some(current) {
            return None;
        }
        let key = self.key(period)?;
        let nonce = Nonce::try_assume_unique_for_key(nonce).ok()?;
        let mut body = sealed.to_vec();
        let plain = key
            .open_in_place(nonce, Aad::from(period.to_be_bytes()), &mut body)
            .ok()?;
        Some(plain.to_vec())
    }
}

impl ProducesTickets for SharedTickets {
    fn enabled(&self) -> bool {
        true
    }

    fn lifetime(&self) -> u32 {
        LIFETIME
    }

    fn encrypt(&self, plain: &[u8]) -> Option<Vec<u8>> {
        self.seal(plain, SystemTime::now())
    }

    fn decrypt(&self, cipher: &[u8]) -> Option<Vec<u8>> {
        self.open(cipher, SystemTime::now())
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn a_ticket_opens_in_any_worker_for_two_periods_and_not_when_touched() {
        prepare();
        let (one, two) = (SharedTickets::new(), SharedTickets::new());
        let now = SystemTime::now();
        let ticket = one.seal(b"session state", now).expect("sealed");
        assert_eq!(
            two.open(&ticket, now).as_deref(),
            Some(&b"session state"[..])
        );
        let period = Duration::from_secs(u64::from(LIFETIME));
        assert!(two.open(&ticket, now + period).is_some(), "the next period");
        assert!(two.open(&ticket, now + period * 2).is_none(), "expired");
        for i in 0..ticket.len() {
            let mut bad = ticket.clone();
            bad[i] ^= 1;
            assert!(two.open(&bad, now).is_none(), "byte {i} changed");
        }
        for cut in 0..ticket.len() {
            assert!(two.open(&ticket[..cut], now).is_none());
        }
        let other = SharedTickets {
            secret: [7; 32],
            rng: SystemRandom::new(),
        };
        assert!(other.open(&ticket, now).is_none(), "another server's");
    }
}
