//! Small deterministic hashing used for ordering and opaque tokens.
//!
//! `std`'s `DefaultHasher` is not guaranteed to be stable across Rust
//! releases; page order and `NextToken`s only need to be stable within one
//! process, but a fixed function keeps seeded runs reproducible everywhere.

/// FNV-1a over `bytes`, finished with the splitmix64 mixer so that nearby
/// inputs (ids differing in one digit) land far apart.
pub(crate) fn hash64(seed: u64, bytes: &[u8]) -> u64 {
    const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    let mut h = OFFSET ^ seed;
    for &b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(PRIME);
    }
    mix(h)
}

/// The splitmix64 finalizer.
pub(crate) fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// Lowercase hex of `bytes`.
pub(crate) fn to_hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for &b in bytes {
        out.push(char::from(DIGITS[usize::from(b >> 4)]));
        out.push(char::from(DIGITS[usize::from(b & 0x0f)]));
    }
    out
}

/// Inverse of [`to_hex`]; `None` for anything that is not even-length
/// lowercase or uppercase hex.
pub(crate) fn from_hex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) {
        return None;
    }
    text.as_bytes()
        .chunks(2)
        .map(|pair| {
            let hi = char::from(pair[0]).to_digit(16)?;
            let lo = char::from(pair[1]).to_digit(16)?;
            u8::try_from(hi * 16 + lo).ok()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_round_trip() {
        let data = b"backup-0123456789abcdef0";
        assert_eq!(from_hex(&to_hex(data)).as_deref(), Some(&data[..]));
        assert_eq!(from_hex("abc"), None);
        assert_eq!(from_hex("zz"), None);
    }

    #[test]
    fn hash_depends_on_seed_and_input() {
        assert_ne!(hash64(1, b"a"), hash64(2, b"a"));
        assert_ne!(hash64(1, b"a"), hash64(1, b"b"));
        assert_eq!(hash64(7, b"same"), hash64(7, b"same"));
    }
}
