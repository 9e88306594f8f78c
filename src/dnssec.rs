//! DNSSEC keys: the algorithms sipsteer signs with (13, ECDSA P-256 with SHA-256, and 15,
//! Ed25519), PKCS#8 key files read (PEM or DER) and generated, and what a key publishes: its
//! DNSKEY (and CDNSKEY) record data, its key tag and its DS (and CDS) digest, each computed
//! once when the key is loaded. The crypto is hickory-proto's `dnssec-ring` feature (ring).

mod keyset;
mod sign;

use std::fmt;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

pub use keyset::{
    KeySet, KeyState, KeyStatus, Policy, RETRY, Role, SetError, SetKey, Timings, successor_timings,
    zsk_end,
};
pub use sign::Window;

use hickory_proto::dnssec::crypto::{EcdsaSigningKey, Ed25519SigningKey};
use hickory_proto::dnssec::{self as hd, PublicKey, SigningKey};
use hickory_proto::rr::Name;
use rustls::pki_types::PrivatePkcs8KeyDer;

/// DNSKEY flags: zone key + secure entry point (257). One key signs everything (a combined
/// signing key), so it is the key the parent's DS points at.
pub const FLAGS_CSK: u16 = 257;
/// DNSKEY flags of a key-signing key of a keys directory: the same as a CSK's (SEP set).
pub const FLAGS_KSK: u16 = 257;
/// DNSKEY flags of a zone-signing key: zone key, no SEP bit.
pub const FLAGS_ZSK: u16 = 256;

/// Signatures that could not be made (the set went out without that RRSIG), since start.
static SIGNING_FAILURES: AtomicU64 = AtomicU64::new(0);

/// How many signatures could not be made since the process started.
pub fn signing_failures() -> u64 {
    SIGNING_FAILURES.load(Ordering::Relaxed)
}
/// DNSKEY protocol field, always 3 (RFC 4034 2.1.2).
const PROTOCOL: u8 = 3;
/// DS digest type 2: SHA-256 (RFC 4509), the one every resolver validates.
pub const DIGEST_SHA256: u8 = 2;

/// A signing algorithm sipsteer supports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Algorithm {
    /// 13: ECDSA P-256 with SHA-256 (RFC 6605).
    #[default]
    EcdsaP256,
    /// 15: Ed25519 (RFC 8080).
    Ed25519,
}

impl Algorithm {
    /// The algorithm's number in DNSKEY, RRSIG and DS records.
    pub fn number(self) -> u8 {
        match self {
            Algorithm::EcdsaP256 => 13,
            Algorithm::Ed25519 => 15,
        }
    }

    /// From its number or its mnemonic (`13`, `ecdsap256sha256`, `15`, `ed25519`).
    pub fn parse(s: &str) -> Option<Algorithm> {
        match s.to_ascii_lowercase().as_str() {
            "13" | "ecdsap256sha256" => Some(Algorithm::EcdsaP256),
            "15" | "ed25519" => Some(Algorithm::Ed25519),
            _ => None,
        }
    }

    /// The mnemonic of RFC 8624 (`ECDSAP256SHA256`, `ED25519`).
    pub fn mnemonic(self) -> &'static str {
        match self {
            Algorithm::EcdsaP256 => "ECDSAP256SHA256",
            Algorithm::Ed25519 => "ED25519",
        }
    }

    /// What a key of this algorithm is, in words (for error messages).
    pub fn describe(self) -> &'static str {
        match self {
            Algorithm::EcdsaP256 => "an ECDSA P-256 key (algorithm 13)",
            Algorithm::Ed25519 => "an Ed25519 key (algorithm 15)",
        }
    }
}

/// Why a key file cannot be used.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum KeyError {
    #[error("no PKCS#8 private key (PEM `BEGIN PRIVATE KEY` or DER) found")]
    NotPkcs8,
    #[error("not {}", .0.describe())]
    WrongAlgorithm(Algorithm),
    #[error("cannot generate a key: {0}")]
    Generate(String),
}

/// A zone's signing key, with everything it publishes computed once.
pub struct ZoneKey {
    algorithm: Algorithm,
    signer: Box<dyn SigningKey>,
    /// Algorithm 13 signs with RFC 6979 deterministic nonces (ring's ECDSA draws a random
    /// one per signature, so two instances would make different RRSIGs).
    p256: Option<p256::ecdsa::SigningKey>,
    /// DNSKEY record data: flags, protocol, algorithm, public key.
    dnskey: Box<[u8]>,
    key_tag: u16,
}

impl fmt::Debug for ZoneKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ZoneKey")
            .field("algorithm", &self.algorithm)
            .field("key_tag", &self.key_tag)
            .finish_non_exhaustive()
    }
}

/// Two keys are the same key when they publish the same DNSKEY.
impl PartialEq for ZoneKey {
    fn eq(&self, other: &ZoneKey) -> bool {
        self.dnskey == other.dnskey
    }
}

impl ZoneKey {
    /// Reads a PKCS#8 private key of `algorithm` from PEM (`-----BEGIN PRIVATE KEY-----`, as
    /// `sipsteer dnssec keygen` and `openssl genpkey` write) or DER bytes.
    pub fn from_pkcs8(algorithm: Algorithm, bytes: &[u8]) -> Result<ZoneKey, KeyError> {
        ZoneKey::from_pkcs8_flags(algorithm, FLAGS_CSK, bytes)
    }

    /// Like [`ZoneKey::from_pkcs8`], publishing the DNSKEY flags `flags` ([`FLAGS_KSK`],
    /// [`FLAGS_ZSK`]); the key tag depends on them.
    pub fn from_pkcs8_flags(
        algorithm: Algorithm,
        flags: u16,
        bytes: &[u8],
    ) -> Result<ZoneKey, KeyError> {
        let der = pkcs8_der(bytes).ok_or(KeyError::NotPkcs8)?;
        let wrong = |_| KeyError::WrongAlgorithm(algorithm);
        let signer: Box<dyn SigningKey> = match algorithm {
            Algorithm::EcdsaP256 => Box::new(
                EcdsaSigningKey::from_pkcs8(&der, hd::Algorithm::ECDSAP256SHA256).map_err(wrong)?,
            ),
            Algorithm::Ed25519 => {
                // OpenSSL writes v1 documents (no public key); ring checks v2 ones fully.
                let pair = ring::signature::Ed25519KeyPair::from_pkcs8_maybe_unchecked(
                    der.secret_pkcs8_der(),
                )
                .map_err(|_| KeyError::WrongAlgorithm(algorithm))?;
                Box::new(Ed25519SigningKey::from_ed25519(pair))
            }
        };
        let public = signer
            .to_public_key()
            .map_err(|_| KeyError::WrongAlgorithm(algorithm))?;
        let mut dnskey = Vec::with_capacity(4 + public.public_bytes().len());
        dnskey.extend_from_slice(&flags.to_be_bytes());
        dnskey.push(PROTOCOL);
        dnskey.push(algorithm.number());
        dnskey.extend_from_slice(public.public_bytes());
        let key_tag = key_tag(&dnskey);
        let p256 = match algorithm {
            Algorithm::EcdsaP256 => {
                use p256::pkcs8::DecodePrivateKey;
                let k = p256::ecdsa::SigningKey::from_pkcs8_der(der.secret_pkcs8_der())
                    .map_err(|_| KeyError::WrongAlgorithm(algorithm))?;
                Some(k)
            }
            Algorithm::Ed25519 => None,
        };
        Ok(ZoneKey {
            algorithm,
            signer,
            p256,
            dnskey: dnskey.into_boxed_slice(),
            key_tag,
        })
    }

    /// A new private key of `algorithm`, as a PEM PKCS#8 document.
    pub fn generate_pem(algorithm: Algorithm) -> Result<String, KeyError> {
        let der = match algorithm {
            Algorithm::EcdsaP256 => EcdsaSigningKey::generate_pkcs8(hd::Algorithm::ECDSAP256SHA256),
            Algorithm::Ed25519 => Ed25519SigningKey::generate_pkcs8(),
        }
        .map_err(|e| KeyError::Generate(e.to_string().to_lowercase()))?;
        Ok(pem("PRIVATE KEY", der.secret_pkcs8_der()))
    }

    pub fn algorithm(&self) -> Algorithm {
        self.algorithm
    }

    /// The DNSKEY flags (257 for a CSK or KSK, 256 for a ZSK).
    pub fn flags(&self) -> u16 {
        u16::from_be_bytes([self.dnskey[0], self.dnskey[1]])
    }

    /// The key tag (RFC 4034 appendix B), computed once.
    pub fn key_tag(&self) -> u16 {
        self.key_tag
    }

    /// The DNSKEY (and CDNSKEY) record data.
    pub fn dnskey_rdata(&self) -> &[u8] {
        &self.dnskey
    }

    /// Signs `data` (the RRSIG's signed data): the same bytes for the same data and key.
    fn sign(&self, data: &[u8]) -> Vec<u8> {
        use p256::ecdsa::signature::Signer;
        if let Some(k) = &self.p256 {
            let sig: p256::ecdsa::Signature = k.sign(data);
            return sig.to_bytes().to_vec();
        }
        // Ed25519 (RFC 8032) is deterministic; ring's signing does not fail in practice.
        self.signer.sign(&hd::TBS::from(data)).unwrap_or_else(|e| {
            SIGNING_FAILURES.fetch_add(1, Ordering::Relaxed);
            tracing::error!(key_tag = self.key_tag, "cannot sign: {e}");
            Vec::new()
        })
    }

    /// The SHA-256 digest of this key at `owner` (RFC 4034 5.1.4: the owner in canonical
    /// form, then the DNSKEY record data).
    pub fn digest(&self, owner: &Name) -> Vec<u8> {
        let mut input = canonical_name(owner);
        input.extend_from_slice(&self.dnskey);
        ring::digest::digest(&ring::digest::SHA256, &input)
            .as_ref()
            .to_vec()
    }

    /// The DS (and CDS) record data for this key at `owner`: key tag, algorithm, digest type
    /// 2, SHA-256 digest.
    pub fn ds_rdata(&self, owner: &Name) -> Vec<u8> {
        let mut out = Vec::with_capacity(36);
        out.extend_from_slice(&self.key_tag.to_be_bytes());
        out.push(self.algorithm.number());
        out.push(DIGEST_SHA256);
        out.extend_from_slice(&self.digest(owner));
        out
    }

    /// The DS record for the parent zone in presentation form:
    /// `example.com. 3600 IN DS 12345 13 2 ABCD…`.
    pub fn ds_text(&self, owner: &Name, ttl: u32) -> String {
        let hex: String = self
            .digest(owner)
            .iter()
            .map(|b| format!("{b:02X}"))
            .collect();
        let mut name = owner.to_ascii();
        if !name.ends_with('.') {
            name.push('.');
        }
        format!(
            "{name} {ttl} IN DS {} {} {DIGEST_SHA256} {hex}",
            self.key_tag,
            self.algorithm.number()
        )
    }
}

/// NXNAME (RFC 9824): the type bit of a compact-denial NXDOMAIN proof.
pub const TYPE_NXNAME: u16 = 128;

/// An NSEC type bitmap (RFC 4034 4.1.2) of `types`: one window block per high byte in use.
pub fn type_bitmap(types: &[u16]) -> Vec<u8> {
    let mut sorted = types.to_vec();
    sorted.sort_unstable();
    sorted.dedup();
    let mut out = Vec::new();
    let mut i = 0;
    while let Some(&first) = sorted.get(i) {
        let window = (first >> 8) as u8;
        let mut bits = [0u8; 32];
        let mut len = 0;
        while let Some(&t) = sorted.get(i).filter(|&&t| (t >> 8) as u8 == window) {
            let low = (t & 0xFF) as usize;
            bits[low / 8] |= 0x80 >> (low % 8);
            len = low / 8 + 1;
            i += 1;
        }
        out.push(window);
        out.push(len as u8);
        out.extend_from_slice(&bits[..len]);
    }
    out
}

/// RFC 4034 appendix B, over the DNSKEY record data.
pub fn key_tag(rdata: &[u8]) -> u16 {
    let mut ac: u32 = 0;
    for (i, b) in rdata.iter().enumerate() {
        ac += if i & 1 == 1 {
            u32::from(*b)
        } else {
            u32::from(*b) << 8
        };
    }
    ac += (ac >> 16) & 0xFFFF;
    (ac & 0xFFFF) as u16
}

/// A name in canonical wire form: uncompressed, lowercase (RFC 4034 6.2).
pub fn canonical_name(name: &Name) -> Vec<u8> {
    let mut out = Vec::with_capacity(name.len() + 2);
    for label in name {
        out.push(label.len() as u8);
        out.extend(label.iter().map(u8::to_ascii_lowercase));
    }
    out.push(0);
    out
}

/// The PKCS#8 DER inside PEM text, or the bytes themselves when they are DER.
fn pkcs8_der(bytes: &[u8]) -> Option<PrivatePkcs8KeyDer<'static>> {
    use rustls::pki_types::pem::PemObject;
    if bytes.first() == Some(&0x30) {
        return Some(PrivatePkcs8KeyDer::from(bytes.to_vec()));
    }
    PrivatePkcs8KeyDer::from_pem_slice(bytes).ok()
}

/// A PEM document: base64 in lines of 64 characters between BEGIN and END lines.
fn pem(label: &str, der: &[u8]) -> String {
    use base64::Engine;
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for chunk in b64.as_bytes().chunks(64) {
        out.push_str(&String::from_utf8_lossy(chunk));
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

/// Writes a private file (mode 0600; its directory created with mode 0700), atomically and
/// without replacing an existing file: a temporary file, synced, hard-linked into place, and
/// the directory synced so the new name survives a crash.
pub fn write_private(path: &Path, bytes: &[u8]) -> Result<(), String> {
    use std::os::unix::fs::DirBuilderExt;
    let reason = |e: std::io::Error| {
        let s = e.to_string();
        s.split(" (os error").next().unwrap_or(&s).to_lowercase()
    };
    let dir = dir_of(path);
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(reason)?;
    let tmp = write_temp(path, bytes).map_err(reason)?;
    // A hard link fails when the name exists: a key is never replaced.
    let linked = std::fs::hard_link(&tmp, path);
    let _ = std::fs::remove_file(&tmp);
    linked
        .and_then(|()| std::fs::File::open(dir)?.sync_all())
        .map_err(reason)
}

/// Writes `bytes` (mode 0600, synced) to a new temporary file beside `path` and returns its
/// name, for the caller to link or rename into place; nothing is left behind on an error.
pub(crate) fn write_temp(path: &Path, bytes: &[u8]) -> std::io::Result<std::path::PathBuf> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned());
    let tmp = dir_of(path).join(format!(
        ".{}.{}.tmp",
        name.unwrap_or_default(),
        std::process::id()
    ));
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)?;
    let written = f.write_all(bytes).and_then(|()| f.sync_all());
    drop(f);
    if written.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    written.map(|()| tmp)
}

/// The directory a file is written in: its parent, or `.` for a bare file name.
fn dir_of(path: &Path) -> &Path {
    match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bare_file_name_is_written_in_the_current_directory() {
        assert_eq!(dir_of(Path::new("zone.pem")), Path::new("."));
        assert_eq!(dir_of(Path::new("keys/zone.pem")), Path::new("keys"));
        assert_eq!(dir_of(Path::new("/zone.pem")), Path::new("/"));
    }

    #[test]
    fn generated_keys_load_and_publish_consistent_records() {
        for alg in [Algorithm::EcdsaP256, Algorithm::Ed25519] {
            let pem = ZoneKey::generate_pem(alg).expect("generate");
            let k = ZoneKey::from_pkcs8(alg, pem.as_bytes()).expect("load");
            let other = if alg == Algorithm::Ed25519 {
                Algorithm::EcdsaP256
            } else {
                Algorithm::Ed25519
            };
            assert_eq!(
                ZoneKey::from_pkcs8(other, pem.as_bytes()).err(),
                Some(KeyError::WrongAlgorithm(other))
            );
            let rd = k.dnskey_rdata();
            assert_eq!(&rd[..4], &[1, 1, 3, alg.number()]);
            let pk_len = if alg == Algorithm::Ed25519 { 32 } else { 64 };
            assert_eq!(rd.len(), 4 + pk_len);
            // The key tag and digest agree with hickory-proto's own computation.
            let pk = hd::PublicKeyBuf::new(rd[4..].to_vec(), hd::Algorithm::from_u8(alg.number()));
            let dnskey = hd::rdata::DNSKEY::new(true, true, false, pk);
            assert_eq!(dnskey.calculate_key_tag().expect("tag"), k.key_tag());
            let owner = Name::from_ascii("Example.COM.").expect("name");
            let digest = dnskey
                .to_digest(&owner, hd::DigestType::SHA256)
                .expect("digest");
            assert_eq!(digest.as_ref(), &k.digest(&owner)[..]);
        }
        // A 1, RRSIG 46, NSEC 47, CAA 257: two windows.
        assert_eq!(
            type_bitmap(&[47, 1, 257, 46, 1]),
            [0, 6, 0x40, 0, 0, 0, 0, 0x03, 1, 1, 0x40]
        );
        assert_eq!(
            ZoneKey::from_pkcs8(Algorithm::EcdsaP256, b"not a key").err(),
            Some(KeyError::NotPkcs8)
        );
    }
}
