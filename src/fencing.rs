//! Where fencing tokens are counted: a few counter keys, not one per resource.
//!
//! Tokens come from one counter per `keyPrefix`, `{<prefix>}:fencing`. A
//! single counter that every grant increments gives every resource strictly
//! increasing tokens, and the keys dist-lock leaves behind do not grow with
//! the number of resource names. On a Redis Cluster a script may touch the
//! keys of one slot only, so there is one counter per hash slot (of the slots
//! that locks use): `{<prefix>~<5 hex digits>}:fencing`, whose hash tag was
//! chosen to fall in that slot.
//!
//! A grant also writes the token it gave under `{<tag>}:token:<lock key>`,
//! with the lock's ttl, so that a repeated attempt of the same id (whose
//! first answer was lost) is given the same token again; the release deletes
//! it, and the extension extends it. (Named after the lock key, not the lock
//! id, so that it exists whenever a lock of this version is held: during a
//! Cluster slot migration, a script runs on the importing node only if all
//! its declared keys are there.)
//!
//! **No collision with lock keys.** `<tag>` is the prefix with every `}`
//! removed, followed by the slot part in Cluster mode, so it contains no `}`.
//! A lock key is `prefix + name`. One of our keys, `"{" + tag + "}…"`, could
//! only start with the prefix if the prefix has no `}` (the first `}` of our
//! key comes after the whole prefix) and is made of `{` only (each character
//! equals the one before it). So for any prefix but `""`, `"{"`, `"{{"`, … no
//! resource name gives one of these keys; for those, the names that would are
//! refused ([`reserved`]). They also differ from the keys of earlier versions
//! (`{K}:fence`, `{K}:queue`, …), which end otherwise.

use std::sync::LazyLock;

/// The number of hash slots of a Redis Cluster.
pub const SLOTS: u16 = 16384;

/// The suffix of a counter key.
const COUNTER_SUFFIX: &str = "}:fencing";
/// The text between the tag and the lock id in a token key.
const TOKEN_INFIX: &str = "}:token:";
/// The length of the slot part of a Cluster tag: `~` and 5 hex digits.
const SLOT_PART_LEN: usize = 6;

/// CRC16-CCITT (XMODEM: polynomial 0x1021, initial value 0, no reflection),
/// the checksum Redis Cluster hashes keys with, continued from `crc`.
pub fn crc16_from(mut crc: u16, bytes: &[u8]) -> u16 {
    for &b in bytes {
        crc ^= u16::from(b) << 8;
        for _ in 0..8 {
            crc = if crc & 0x8000 != 0 {
                (crc << 1) ^ 0x1021
            } else {
                crc << 1
            };
        }
    }
    crc
}

/// CRC16-XMODEM of `bytes`.
pub fn crc16(bytes: &[u8]) -> u16 {
    crc16_from(0, bytes)
}

/// The part of `key` that Redis Cluster hashes: the text between the first
/// `{` and the next `}` if it is not empty, else the whole key.
pub fn hashed_part(key: &[u8]) -> &[u8] {
    if let Some(open) = key.iter().position(|&b| b == b'{') {
        if let Some(len) = key[open + 1..].iter().position(|&b| b == b'}') {
            if len > 0 {
                return &key[open + 1..open + 1 + len];
            }
        }
    }
    key
}

/// The Redis Cluster hash slot of `key` (what `CLUSTER KEYSLOT` answers).
pub fn key_slot(key: &str) -> u16 {
    crc16(hashed_part(key.as_bytes())) % SLOTS
}

/// For every value of the low 14 bits of a CRC16, a slot part (`~` and 5 hex
/// digits) whose CRC16 has those low bits. Built once, on first use in
/// Cluster mode (5-digit hex strings cover all 16384 values; 4 do not).
static SLOT_PARTS: LazyLock<Vec<[u8; SLOT_PART_LEN]>> = LazyLock::new(|| {
    let mut parts = vec![[0u8; SLOT_PART_LEN]; usize::from(SLOTS)];
    let mut found = vec![false; usize::from(SLOTS)];
    let mut left = usize::from(SLOTS);
    for n in 0u32..0x10_0000 {
        let mut part = [b'~', 0, 0, 0, 0, 0];
        let hex = format!("{n:05x}");
        part[1..].copy_from_slice(hex.as_bytes());
        let low = usize::from(crc16(&part) % SLOTS);
        if !found[low] {
            found[low] = true;
            parts[low] = part;
            left -= 1;
            if left == 0 {
                break;
            }
        }
    }
    parts
});

/// The hash tag of the counter that serves `key` under `prefix`: the prefix
/// without `}`, and in Cluster mode the slot part that puts the tag in the
/// slot of `key`.
///
/// CRC16 is linear: the CRC of `a` followed by `b` is the CRC of `a`
/// followed by as many zero bytes as `b` has, XOR the CRC of `b` alone. So
/// the slot part is looked up in one table for any prefix.
fn tag(prefix: &str, key: &str, cluster: bool) -> String {
    let mut tag: String = prefix.chars().filter(|&c| c != '}').collect();
    if cluster {
        let base = crc16_from(crc16(tag.as_bytes()), &[0; SLOT_PART_LEN]) % SLOTS;
        let part = &SLOT_PARTS[usize::from(key_slot(key) ^ base)];
        // The part is ASCII: `~` and hex digits.
        tag.extend(part.iter().map(|&b| char::from(b)));
    }
    tag
}

/// The fencing counter that a grant of `key` (a lock key under `prefix`)
/// increments: `{<prefix>}:fencing`, or on a Redis Cluster
/// `{<prefix>~xxxxx}:fencing` in the slot of `key`.
pub fn counter_key(prefix: &str, key: &str, cluster: bool) -> String {
    format!("{{{}{COUNTER_SUFFIX}", tag(prefix, key, cluster))
}

/// Where the grant of `key` keeps its token while the lock is held (same tag
/// as [`counter_key`]).
pub fn token_key(prefix: &str, key: &str, cluster: bool) -> String {
    format!("{{{}{TOKEN_INFIX}{key}", tag(prefix, key, cluster))
}

/// The per-resource counter of dist-lock 2.x before 3.0: `{K}:fence`, or
/// `K:fence` for a key that has a hash tag or contains a `}`. A grant raises
/// the new counter above it and deletes it.
pub fn legacy_counter_key(key: &str) -> String {
    if key.contains('}') {
        format!("{key}:fence")
    } else {
        format!("{{{key}}}:fence")
    }
}

/// Whether `key`, a lock key under `prefix`, is one of the counter or token
/// keys. Only possible for a prefix made of `{` alone (the empty one too):
/// see the module documentation.
pub fn reserved(prefix: &str, key: &str) -> bool {
    if !prefix.chars().all(|c| c == '{') {
        return false;
    }
    let Some(rest) = key.strip_prefix('{').and_then(|k| k.strip_prefix(prefix)) else {
        return false;
    };
    let rest = match rest.strip_prefix('~') {
        Some(r) if r.len() >= 5 && r.as_bytes()[..5].iter().all(u8::is_ascii_hexdigit) => &r[5..],
        Some(_) => return false,
        None => rest,
    };
    rest == COUNTER_SUFFIX || rest.starts_with(TOKEN_INFIX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc16_and_slots_match_redis() {
        assert_eq!(crc16(b"123456789"), 0x31C3);
        assert_eq!(key_slot("foo"), 12182);
        assert_eq!(key_slot("bar"), 5061);
        assert_eq!(key_slot("{user1000}.following"), key_slot("user1000"));
        assert_eq!(key_slot("foo{}{bar}"), crc16(b"foo{}{bar}") % SLOTS);
        assert_eq!(key_slot("foo{{bar}}zap"), key_slot("{bar"));
        assert_eq!(key_slot("foo{bar}{zap}"), key_slot("bar"));
    }

    #[test]
    fn every_slot_has_a_counter_in_it() {
        for prefix in ["lock:", "", "{app}:", "a}b{c", "ünï:"] {
            for slot in 0..SLOTS {
                // A key in `slot`: its hash tag is a slot part's digits.
                let part = &SLOT_PARTS[usize::from(slot)];
                let key = format!("x{{{}}}", std::str::from_utf8(part).expect("ascii"));
                assert_eq!(key_slot(&key), slot);
                let counter = counter_key(prefix, &key, true);
                assert_eq!(key_slot(&counter), slot, "{counter}");
                assert_eq!(key_slot(&token_key(prefix, &key, true)), slot);
            }
        }
    }

    #[test]
    fn key_names() {
        assert_eq!(counter_key("lock:", "lock:a", false), "{lock:}:fencing");
        assert_eq!(token_key("lock:", "lock:a", false), "{lock:}:token:lock:a");
        assert_eq!(counter_key("{app}:", "{app}:a", false), "{{app:}:fencing");
        let c = counter_key("lock:", "lock:a", true);
        assert!(c.starts_with("{lock:~") && c.ends_with("}:fencing"), "{c}");
        assert_eq!(legacy_counter_key("lock:a"), "{lock:a}:fence");
        assert_eq!(legacy_counter_key("lock:{u}x"), "lock:{u}x:fence");
        assert_eq!(legacy_counter_key("a}b"), "a}b:fence");
        assert_eq!(legacy_counter_key("lock:{open"), "{lock:{open}:fence");
    }

    #[test]
    fn no_lock_key_is_a_counter_unless_reserved() {
        for prefix in ["lock:", "{app}:", "}", "{a", "p{}", "{", ""] {
            for cluster in [false, true] {
                let key = format!("{prefix}name");
                for k in [
                    counter_key(prefix, &key, cluster),
                    token_key(prefix, &key, cluster),
                ] {
                    let is_lock_key = k.len() > prefix.len() && k.starts_with(prefix);
                    assert_eq!(is_lock_key, reserved(prefix, &k), "{prefix:?} {k}");
                    assert_eq!(is_lock_key, prefix.chars().all(|c| c == '{'));
                }
            }
        }
        assert!(!reserved("", "{}:fence"));
        assert!(!reserved("", "{x}:fencing"));
        assert!(!reserved("lock:", "{lock:}:fencing"));
    }
}
