//! DNS Cookies (RFC 7873) with interoperable server cookies (RFC 9018): reading the COOKIE
//! option of a query, checking its server cookie and making a fresh one.
//!
//! A server cookie is version 1, three reserved zero bytes, a 32-bit timestamp and the
//! SipHash-2-4 of (client cookie | version | reserved | timestamp | client address) keyed with a
//! 128-bit secret. With configured secrets the first one signs and every one verifies, exactly
//! as other RFC 9018 servers sharing the secret do. Without one, a random process secret is
//! used and the signing key rotates every hour (derived from it and the hour), so a cookie
//! signed before a rotation stays valid for its whole hour of life.

use std::hash::Hasher;
use std::net::IpAddr;

use siphasher::sip::SipHasher24;
use siphasher::sip128::{Hasher128, SipHasher24 as SipHasher128};

/// EDNS option code of COOKIE.
pub(crate) const OPT_COOKIE: u16 = 10;
/// Length of the server cookies made here.
pub(crate) const SERVER_LEN: usize = 16;
/// A server cookie older than this is refused (RFC 9018 section 4.3).
const MAX_AGE: i64 = 3600;
/// A server cookie from further ahead than this is refused.
const MAX_AHEAD: i64 = 300;
/// A valid server cookie younger than this is sent back unchanged.
const REUSE_AGE: i64 = 1800;
/// Rotation period of the derived key when no secret is configured.
const ROTATE: u32 = 3600;

/// The COOKIE option of a query, as sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Cookie {
    pub client: [u8; 8],
    server: [u8; 32],
    server_len: u8,
}

impl Cookie {
    /// Reads an option body: 8 bytes of client cookie and an optional server cookie of 8 to
    /// 32 bytes. Anything else is malformed (FORMERR, RFC 7873 section 5.2.2).
    pub(crate) fn parse(body: &[u8]) -> Option<Cookie> {
        if body.len() != 8 && !(16..=40).contains(&body.len()) {
            return None;
        }
        let mut c = Cookie {
            client: [0; 8],
            server: [0; 32],
            server_len: (body.len() - 8) as u8,
        };
        c.client.copy_from_slice(&body[..8]);
        c.server[..body.len() - 8].copy_from_slice(&body[8..]);
        Some(c)
    }

    pub(crate) fn server(&self) -> &[u8] {
        &self.server[..self.server_len as usize]
    }
}

/// What a query's cookie proved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Proof {
    /// A client cookie and no server cookie.
    ClientOnly,
    /// A server cookie this server (or one sharing its secret) made for this client.
    Valid,
    /// A server cookie that does not verify (other secret, other address, expired).
    Invalid,
}

/// The keys that sign and verify server cookies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Secrets {
    /// Configured: the first signs, every one verifies.
    Fixed(Vec<[u8; 16]>),
    /// A random process secret from which the key of each hour is derived.
    Rotating([u8; 16]),
}

impl Secrets {
    /// Checks a query's cookie and returns the server cookie to send back.
    pub(crate) fn check(&self, c: &Cookie, client: IpAddr, now: u32) -> (Proof, [u8; SERVER_LEN]) {
        let s = c.server();
        if s.is_empty() {
            return (Proof::ClientOnly, self.make(&c.client, client, now));
        }
        let Some((ts, current)) = self.verify(c, client, now) else {
            return (Proof::Invalid, self.make(&c.client, client, now));
        };
        let age = i64::from(now.wrapping_sub(ts) as i32);
        if current && age < REUSE_AGE {
            let mut same = [0u8; SERVER_LEN];
            same.copy_from_slice(s);
            return (Proof::Valid, same);
        }
        (Proof::Valid, self.make(&c.client, client, now))
    }

    /// A fresh server cookie for this client cookie and address.
    pub(crate) fn make(&self, cc: &[u8; 8], client: IpAddr, now: u32) -> [u8; SERVER_LEN] {
        let key = self.signing_key(now);
        let mut out = [0u8; SERVER_LEN];
        out[0] = 1;
        out[4..8].copy_from_slice(&now.to_be_bytes());
        let hash = server_hash(&key, cc, &out[..8], client);
        out[8..].copy_from_slice(&hash);
        out
    }

    /// The timestamp of a verified server cookie, and whether the signing key made it.
    fn verify(&self, c: &Cookie, client: IpAddr, now: u32) -> Option<(u32, bool)> {
        let s = c.server();
        if s.len() != SERVER_LEN || s[0] != 1 || s[1..4] != [0, 0, 0] {
            return None;
        }
        let ts = u32::from_be_bytes([s[4], s[5], s[6], s[7]]);
        let age = i64::from(now.wrapping_sub(ts) as i32);
        if !(-MAX_AHEAD..=MAX_AGE).contains(&age) {
            return None;
        }
        let ok = |key: &[u8; 16]| server_hash(key, &c.client, &s[..8], client) == s[8..];
        match self {
            Secrets::Fixed(keys) => keys.iter().position(ok).map(|i| (ts, i == 0)),
            Secrets::Rotating(master) => {
                let current = ts / ROTATE == now / ROTATE;
                ok(&derive(master, ts / ROTATE)).then_some((ts, current))
            }
        }
    }

    fn signing_key(&self, now: u32) -> [u8; 16] {
        match self {
            Secrets::Fixed(keys) => keys.first().copied().unwrap_or([0; 16]),
            Secrets::Rotating(master) => derive(master, now / ROTATE),
        }
    }
}

/// SipHash-2-4 over client cookie, version, reserved bytes, timestamp and client address.
pub(crate) fn server_hash(key: &[u8; 16], cc: &[u8; 8], head: &[u8], client: IpAddr) -> [u8; 8] {
    let mut h = SipHasher24::new_with_key(key);
    h.write(cc);
    h.write(head);
    match crate::geo::canonical(client) {
        IpAddr::V4(a) => h.write(&a.octets()),
        IpAddr::V6(a) => h.write(&a.octets()),
    }
    h.finish().to_le_bytes()
}

/// The key of one rotation period.
fn derive(master: &[u8; 16], period: u32) -> [u8; 16] {
    let mut h = SipHasher128::new_with_key(master);
    h.write(&period.to_be_bytes());
    h.finish128().as_bytes()
}

/// Seconds since the epoch, as cookies count them.
pub(crate) fn unix_now() -> u32 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as u32)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(s: &str) -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    fn key(s: &str) -> [u8; 16] {
        hex(s).try_into().unwrap()
    }

    /// RFC 9018 appendix A.1 and A.2.
    #[test]
    fn rfc9018_vectors() {
        let secrets = Secrets::Fixed(vec![key("e5e973e5a6b2a43f48e7dc849e37bfcf")]);
        let ip: IpAddr = "198.51.100.100".parse().unwrap();
        let cc: [u8; 8] = hex("2464c4abcf10c957").try_into().unwrap();
        let sc = secrets.make(&cc, ip, 1559731985);
        assert_eq!(sc.to_vec(), hex("010000005cf79f111f8130c3eee29480"));
        let mut body = cc.to_vec();
        body.extend_from_slice(&sc);
        let c = Cookie::parse(&body).unwrap();
        // Five minutes later the same cookie is valid and sent back unchanged.
        assert_eq!(secrets.check(&c, ip, 1559731985 + 300), (Proof::Valid, sc));
        // After more than half an hour a fresh one is made.
        let (check, fresh) = secrets.check(&c, ip, 1559731985 + 1900);
        assert_eq!(check, Proof::Valid);
        assert_ne!(fresh, sc);
        // After an hour, or from another address, it no longer verifies.
        assert_eq!(secrets.check(&c, ip, 1559731985 + 3601).0, Proof::Invalid);
        let other: IpAddr = "198.51.100.101".parse().unwrap();
        assert_eq!(secrets.check(&c, other, 1559731985).0, Proof::Invalid);
    }

    #[test]
    fn previous_secret_verifies_and_current_signs() {
        let old = key("000102030405060708090a0b0c0d0e0f");
        let new = key("f0f1f2f3f4f5f6f7f8f9fafbfcfdfeff");
        let ip: IpAddr = "2001:db8::1".parse().unwrap();
        let cc = [7u8; 8];
        let sc = Secrets::Fixed(vec![old]).make(&cc, ip, 1000);
        let mut body = cc.to_vec();
        body.extend_from_slice(&sc);
        let c = Cookie::parse(&body).unwrap();
        let both = Secrets::Fixed(vec![new, old]);
        let (check, fresh) = both.check(&c, ip, 1010);
        assert_eq!(check, Proof::Valid);
        assert_eq!(fresh, Secrets::Fixed(vec![new]).make(&cc, ip, 1010));
        assert_eq!(
            Secrets::Fixed(vec![new]).check(&c, ip, 1010).0,
            Proof::Invalid
        );
    }

    #[test]
    fn rotating_key_accepts_the_previous_hour() {
        let s = Secrets::Rotating([9; 16]);
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        let cc = [1u8; 8];
        let t = 3600 * 1000 + 3500;
        let sc = s.make(&cc, ip, t);
        let mut body = cc.to_vec();
        body.extend_from_slice(&sc);
        let c = Cookie::parse(&body).unwrap();
        let (check, fresh) = s.check(&c, ip, t + 200);
        assert_eq!(check, Proof::Valid);
        assert_ne!(fresh, sc, "re-signed with the new hour's key");
        assert_ne!(
            s.make(&cc, ip, t + 200)[8..],
            Secrets::Rotating([8; 16]).make(&cc, ip, t + 200)[8..]
        );
    }

    #[test]
    fn lengths() {
        assert!(Cookie::parse(&[0; 7]).is_none());
        assert!(Cookie::parse(&[0; 8]).is_some());
        for n in 9..16 {
            assert!(Cookie::parse(&vec![0; n]).is_none(), "{n}");
        }
        assert!(Cookie::parse(&[0; 16]).is_some());
        assert!(Cookie::parse(&[0; 40]).is_some());
        assert!(Cookie::parse(&[0; 41]).is_none());
    }
}
