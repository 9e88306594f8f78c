//! A zone's key set and its rollover timings (RFC 7583): each key's role (a combined signing
//! key, or a KSK or ZSK of a keys directory), its publish and active times and the retire and
//! remove times that follow from its successor, the state of every key at a given time, and
//! what that state publishes and signs with (the DNSKEY set, the data signer, the signers of
//! the key sets, the keys of CDS/CDNSKEY). Pure: every time is absolute (seconds since the
//! epoch), so instances that read the same keys at the same time do the same thing.

use std::fmt;
use std::sync::Arc;

use super::ZoneKey;

/// How long after a missing successor was due it is tried again (seconds).
pub const RETRY: u64 = 60;

/// What a key signs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Role {
    /// One key signs everything (`dnssec.key`, or the generated key of `state_dir`).
    Csk,
    /// Key-signing key: signs the DNSKEY, CDS and CDNSKEY sets; the parent's DS points at it.
    Ksk,
    /// Zone-signing key: signs every other set.
    Zsk,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Csk => "csk",
            Role::Ksk => "ksk",
            Role::Zsk => "zsk",
        }
    }
}

/// Where a key is in its life at one time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum KeyState {
    /// Before its publish time: not in the DNSKEY set yet.
    Created,
    /// In the DNSKEY set, not signing data (a ZSK) or not in CDS yet (a KSK).
    Published,
    /// Signing (a ZSK); in CDS/CDNSKEY (a KSK).
    Active,
    /// Its successor took over; still in the DNSKEY set until its remove time.
    Retired,
    /// Gone from the DNSKEY set.
    Removed,
}

impl KeyState {
    pub const ALL: [KeyState; 5] = [
        KeyState::Created,
        KeyState::Published,
        KeyState::Active,
        KeyState::Retired,
        KeyState::Removed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            KeyState::Created => "created",
            KeyState::Published => "published",
            KeyState::Active => "active",
            KeyState::Retired => "retired",
            KeyState::Removed => "removed",
        }
    }
}

impl fmt::Display for KeyState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A key's timings as written (seconds since the epoch). `retire` is the scheduled end of a
/// ZSK's life (its successor is made ahead of it) or the confirmed retirement of a KSK
/// (`dnssec ds-seen`); `remove` a removal time that replaces retire + the removal wait (never
/// before the key retires).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Timings {
    pub publish: u64,
    pub active: u64,
    pub retire: Option<u64>,
    pub remove: Option<u64>,
}

/// The waits of a zone's rollovers, in seconds (RFC 7583 2.1 and 3.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Policy {
    /// A new key is published this long before it signs or goes into CDS: the DNSKEY TTL
    /// plus the propagation delay.
    pub publish_wait: u64,
    /// A retired ZSK stays published this long: the largest TTL it signed plus propagation.
    pub zsk_remove_wait: u64,
    /// A retired KSK stays published this long: the parent's DS TTL plus propagation.
    pub ksk_remove_wait: u64,
    /// A ZSK's life from its active time; its successor is made ahead of its end.
    pub zsk_lifetime: Option<u64>,
    /// A KSK retires this long after its successor went active, with no `ds-seen`.
    pub ds_wait: Option<u64>,
}

/// One key of a set.
#[derive(Debug, Clone, PartialEq)]
pub struct SetKey {
    pub role: Role,
    /// The key's number among the keys of its role (the file name's; 0 for a CSK).
    pub seq: u32,
    pub timings: Timings,
    pub key: Arc<ZoneKey>,
}

/// One key with its timings as they apply (successors taken into account) and its state.
#[derive(Debug, Clone, PartialEq)]
pub struct KeyStatus {
    pub role: Role,
    pub seq: u32,
    pub key_tag: u16,
    pub state: KeyState,
    pub publish: u64,
    pub active: u64,
    pub retire: Option<u64>,
    pub remove: Option<u64>,
}

/// A zone's keys and what they do at the time the set was made for.
#[derive(Debug, Clone)]
pub struct KeySet {
    pub keys: Vec<SetKey>,
    pub policy: Policy,
    /// The time the state below is for.
    pub at: u64,
    /// Every key with its state at `at`.
    pub status: Vec<KeyStatus>,
    /// The DNSKEY set: every published key.
    pub dnskey: Vec<Arc<ZoneKey>>,
    /// The key that signs data RRsets: the active ZSK (or the CSK).
    pub zsk: Arc<ZoneKey>,
    /// The keys that sign the DNSKEY, CDS and CDNSKEY sets: every published KSK (or the CSK).
    pub ksks: Vec<Arc<ZoneKey>>,
    /// The keys CDS and CDNSKEY list (and `dnssec ds` prints): the active KSKs (or the CSK).
    pub cds: Vec<Arc<ZoneKey>>,
    /// The next time a key changes state or a ZSK successor is due (`None`: nothing planned).
    pub next_event: Option<u64>,
    /// When the active ZSK's successor is due and none exists yet (`Some(due)`).
    pub successor_due: Option<u64>,
}

/// Why a key set cannot sign at a time.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SetError {
    #[error("no ZSK is active (the first one goes active at its `active` time)")]
    NoActiveZsk,
    #[error("no KSK is published")]
    NoKsk,
}

/// Two sets are the same when they hold the same keys in the same states (whenever made).
impl PartialEq for KeySet {
    fn eq(&self, other: &KeySet) -> bool {
        self.keys == other.keys && self.policy == other.policy && self.status == other.status
    }
}

impl KeySet {
    /// The set of one combined signing key: published, active and signing everything.
    pub fn single(key: Arc<ZoneKey>) -> KeySet {
        KeySet {
            status: vec![KeyStatus {
                role: Role::Csk,
                seq: 0,
                key_tag: key.key_tag(),
                state: KeyState::Active,
                publish: 0,
                active: 0,
                retire: None,
                remove: None,
            }],
            keys: vec![SetKey {
                role: Role::Csk,
                seq: 0,
                timings: Timings::default(),
                key: Arc::clone(&key),
            }],
            policy: Policy::default(),
            at: 0,
            dnskey: vec![Arc::clone(&key)],
            zsk: Arc::clone(&key),
            ksks: vec![Arc::clone(&key)],
            cds: vec![key],
            next_event: None,
            successor_due: None,
        }
    }

    /// The set of a keys directory's KSKs and ZSKs at time `at`.
    pub fn rolling(mut keys: Vec<SetKey>, policy: Policy, at: u64) -> Result<KeySet, SetError> {
        keys.sort_by_key(|k| (k.role, k.timings.active, k.seq));
        let status: Vec<KeyStatus> = (0..keys.len())
            .map(|i| status_of(&keys, i, &policy, at))
            .collect();
        let with = |f: &dyn Fn(&KeyStatus) -> bool| -> Vec<Arc<ZoneKey>> {
            keys.iter()
                .zip(&status)
                .filter(|(_, s)| f(s))
                .map(|(k, _)| Arc::clone(&k.key))
                .collect()
        };
        let published = |s: &KeyStatus| {
            matches!(
                s.state,
                KeyState::Published | KeyState::Active | KeyState::Retired
            )
        };
        let dnskey = with(&published);
        let ksks = with(&|s| s.role == Role::Ksk && published(s));
        let cds = with(&|s| s.role == Role::Ksk && s.state == KeyState::Active);
        // The ZSK that went active last signs; a retired one only until its successor does.
        let zsk = keys
            .iter()
            .zip(&status)
            .filter(|(_, s)| s.role == Role::Zsk && s.state == KeyState::Active)
            .map(|(k, _)| Arc::clone(&k.key))
            .next_back()
            .ok_or(SetError::NoActiveZsk)?;
        if ksks.is_empty() {
            return Err(SetError::NoKsk);
        }
        let successor_due = zsk_successor_due(&keys, &status, &policy);
        // A successor that is due and missing (it could not be written) is tried again.
        let retry = successor_due.filter(|&d| d <= at).map(|_| at + RETRY);
        let next_event = status
            .iter()
            .flat_map(|s| [Some(s.publish), Some(s.active), s.retire, s.remove])
            .chain([successor_due, retry])
            .flatten()
            .filter(|&t| t > at)
            .min();
        Ok(KeySet {
            keys,
            policy,
            at,
            status,
            dnskey,
            zsk,
            ksks,
            cds,
            next_event,
            successor_due: successor_due.filter(|&d| d <= at),
        })
    }

    /// The number of the next key of `role` (one more than the highest in the set).
    pub fn next_seq(&self, role: Role) -> u32 {
        self.keys
            .iter()
            .filter(|k| k.role == role)
            .map(|k| k.seq)
            .max()
            .unwrap_or(0)
            + 1
    }

    /// Whether a key of `role` newer than the active one exists (a roll is under way).
    pub fn rolling_role(&self, role: Role) -> Option<&KeyStatus> {
        self.status
            .iter()
            .find(|s| s.role == role && matches!(s.state, KeyState::Created | KeyState::Published))
    }
}

/// The key after `keys[i]` in the order of the set (same role, later active time).
fn successor(keys: &[SetKey], i: usize) -> Option<&SetKey> {
    let k = keys.get(i)?;
    keys.get(i + 1..)?.iter().find(|s| s.role == k.role)
}

/// The timings of `keys[i]` as they apply, and its state at `at`.
fn status_of(keys: &[SetKey], i: usize, p: &Policy, at: u64) -> KeyStatus {
    let k = &keys[i];
    let t = k.timings;
    let succ = successor(keys, i);
    let retire = match k.role {
        Role::Csk => None,
        // A ZSK retires when its successor goes active, never before.
        Role::Zsk => succ.map(|s| s.timings.active),
        // A KSK retires once its successor is active and the parent's DS changed
        // (`ds-seen` writes `retire`) or `ds_wait` passed.
        Role::Ksk => succ.and_then(|s| {
            let waited = p.ds_wait.map(|w| s.timings.active + w);
            let confirmed = t.retire;
            [waited, confirmed]
                .into_iter()
                .flatten()
                .min()
                .map(|r| r.max(s.timings.active))
        }),
    };
    let wait = match k.role {
        Role::Ksk => p.ksk_remove_wait,
        _ => p.zsk_remove_wait,
    };
    let remove = retire.map(|r| t.remove.map_or(r + wait, |x| x.max(r)));
    let state = if remove.is_some_and(|r| at >= r) {
        KeyState::Removed
    } else if retire.is_some_and(|r| at >= r) {
        KeyState::Retired
    } else if at >= t.active {
        KeyState::Active
    } else if at >= t.publish {
        KeyState::Published
    } else {
        KeyState::Created
    };
    KeyStatus {
        role: k.role,
        seq: k.seq,
        key_tag: k.key.key_tag(),
        state,
        publish: t.publish,
        active: t.active,
        retire,
        remove,
    }
}

/// When the last ZSK's successor must be made: twice the publish wait before the end of its
/// life (`retire`, or `active + zsk_lifetime`), so that it is published a full publish wait
/// before it signs even when made late. `None` when the last ZSK has no planned end.
fn zsk_successor_due(keys: &[SetKey], status: &[KeyStatus], p: &Policy) -> Option<u64> {
    let (i, last) = keys
        .iter()
        .enumerate()
        .rfind(|(_, k)| k.role == Role::Zsk)?;
    if status.get(i).map(|s| s.state) == Some(KeyState::Removed) {
        return None;
    }
    let end = zsk_end(last, p)?;
    Some(end.saturating_sub(2 * p.publish_wait))
}

/// The planned end of a ZSK's life: its `retire`, or `active + zsk_lifetime`.
pub fn zsk_end(k: &SetKey, p: &Policy) -> Option<u64> {
    k.timings
        .retire
        .or(p.zsk_lifetime.map(|l| k.timings.active + l))
}

/// The timings of a new ZSK made at `now` to follow a key whose life ends at `end`: published
/// now, active at the end (or a full publish wait from now, when that is later).
pub fn successor_timings(now: u64, end: u64, p: &Policy) -> Timings {
    Timings {
        publish: now,
        active: end.max(now + p.publish_wait),
        retire: None,
        remove: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dnssec::{Algorithm, FLAGS_KSK, FLAGS_ZSK};

    fn key(role: Role, seq: u32, publish: u64, active: u64) -> SetKey {
        let pem = ZoneKey::generate_pem(Algorithm::Ed25519).expect("generate");
        let flags = if role == Role::Ksk {
            FLAGS_KSK
        } else {
            FLAGS_ZSK
        };
        let key = ZoneKey::from_pkcs8_flags(Algorithm::Ed25519, flags, pem.as_bytes());
        SetKey {
            role,
            seq,
            timings: Timings {
                publish,
                active,
                retire: None,
                remove: None,
            },
            key: Arc::new(key.expect("load")),
        }
    }

    const P: Policy = Policy {
        publish_wait: 100,
        zsk_remove_wait: 50,
        ksk_remove_wait: 70,
        zsk_lifetime: Some(1000),
        ds_wait: None,
    };

    #[test]
    fn a_zsk_walks_published_active_retired_removed() {
        let ksk = key(Role::Ksk, 1, 0, 0);
        let z1 = key(Role::Zsk, 1, 0, 0);
        let z2 = key(Role::Zsk, 2, 850, 1000);
        let states = |at| {
            let s = KeySet::rolling(vec![ksk.clone(), z1.clone(), z2.clone()], P, at).expect("set");
            let tags: Vec<_> = s.status.iter().map(|k| k.state).collect();
            (tags, s.zsk.key_tag(), s.dnskey.len(), s.next_event)
        };
        use KeyState::*;
        let (t1, t2) = (z1.key.key_tag(), z2.key.key_tag());
        assert_eq!(
            states(10),
            (vec![Active, Active, Created], t1, 2, Some(850))
        );
        assert_eq!(
            states(900),
            (vec![Active, Active, Published], t1, 3, Some(1000))
        );
        // z2's successor is due at 2000 - 200.
        assert_eq!(
            states(1000),
            (vec![Active, Retired, Active], t2, 3, Some(1050))
        );
        assert_eq!(
            states(1050),
            (vec![Active, Removed, Active], t2, 2, Some(1800))
        );
        // With only z1, its successor is due at 1000 - 200 and reported once due.
        let s = KeySet::rolling(vec![ksk.clone(), z1.clone()], P, 799).expect("set");
        assert_eq!((s.next_event, s.successor_due), (Some(800), None));
        let s = KeySet::rolling(vec![ksk.clone(), z1.clone()], P, 800).expect("set");
        assert_eq!(s.successor_due, Some(800));
        assert_eq!(s.next_seq(Role::Zsk), 2);
        assert_eq!(
            successor_timings(900, 1000, &P),
            Timings {
                publish: 900,
                active: 1000,
                retire: None,
                remove: None
            }
        );
        assert_eq!(successor_timings(950, 1000, &P).active, 1050);
    }

    #[test]
    fn a_ksk_retires_on_ds_seen_or_after_ds_wait() {
        let k1 = key(Role::Ksk, 1, 0, 0);
        let k2 = key(Role::Ksk, 2, 500, 600);
        let z = key(Role::Zsk, 1, 0, 0);
        let set = |k1: &SetKey, p: Policy, at| {
            KeySet::rolling(vec![k1.clone(), k2.clone(), z.clone()], p, at).expect("set")
        };
        let tags = |v: &[Arc<ZoneKey>]| v.iter().map(|k| k.key_tag()).collect::<Vec<_>>();
        let (a, b) = (k1.key.key_tag(), k2.key.key_tag());
        let s = set(&k1, P, 550);
        assert_eq!((tags(&s.ksks), tags(&s.cds)), (vec![a, b], vec![a]));
        // Both active: both in CDS until the parent's DS is seen to change.
        let s = set(&k1, P, 10_000);
        assert_eq!((tags(&s.ksks), tags(&s.cds)), (vec![a, b], vec![a, b]));
        let mut seen = k1.clone();
        seen.timings.retire = Some(700);
        let s = set(&seen, P, 720);
        assert_eq!((tags(&s.ksks), tags(&s.cds)), (vec![a, b], vec![b]));
        let s = set(&seen, P, 770);
        assert_eq!((tags(&s.ksks), tags(&s.cds)), (vec![b], vec![b]));
        let waited = Policy {
            ds_wait: Some(300),
            ..P
        };
        assert_eq!(set(&k1, waited, 899).status[0].state, KeyState::Active);
        assert_eq!(set(&k1, waited, 900).status[0].state, KeyState::Retired);
        assert_eq!(
            KeySet::rolling(vec![z.clone()], P, 0).err(),
            Some(SetError::NoKsk)
        );
        assert_eq!(
            KeySet::rolling(vec![k1.clone(), key(Role::Zsk, 1, 0, 50)], P, 10).err(),
            Some(SetError::NoActiveZsk)
        );
    }
}
