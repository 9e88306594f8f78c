//! Plain C structs read from bytes and created zeroed, for the few libc types listed here:
//! each is made of integers (and raw pointers, which are never read from bytes), so every
//! bit pattern, all zeros included, is a valid value.

use std::mem::size_of;

mod sealed {
    pub(crate) trait Sealed {}
}

/// A C struct for which every bit pattern is a valid value. Sealed: only the types below.
pub(crate) trait Plain: Copy + sealed::Sealed {}

macro_rules! plain {
    ($($t:ty),* $(,)?) => {
        $(
            impl sealed::Sealed for $t {}
            impl Plain for $t {}
        )*
    };
}

plain!(
    libc::cmsghdr,
    libc::in_pktinfo,
    libc::in6_pktinfo,
    libc::timespec,
    libc::sock_extended_err,
    libc::mmsghdr,
);

/// A value of all zero bits (null pointers, zero lengths).
pub(crate) fn zeroed<T: Plain>() -> T {
    // SAFETY: `T: Plain` is a C struct of integers and raw pointers, valid when all zero.
    unsafe { std::mem::zeroed() }
}

/// The `T` at the start of `bytes`, if they are long enough (no alignment needed).
pub(crate) fn read<T: Plain>(bytes: &[u8]) -> Option<T> {
    if bytes.len() < size_of::<T>() {
        return None;
    }
    // SAFETY: `bytes` holds at least `size_of::<T>()` initialised bytes, `read_unaligned`
    // needs no alignment, and any bit pattern is a valid `T` (`Plain`).
    Some(unsafe { bytes.as_ptr().cast::<T>().read_unaligned() })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_need_enough_bytes_and_no_alignment() {
        let mut bytes = [0u8; 40];
        let t = libc::timespec {
            tv_sec: 1_700_000_000,
            tv_nsec: 123,
        };
        let raw: [u8; size_of::<libc::timespec>()] =
            // A safe way to get the bytes of a timespec: its two fields, native-endian.
            [t.tv_sec.to_ne_bytes(), t.tv_nsec.to_ne_bytes()]
                .concat()
                .try_into()
                .expect("16 bytes");
        bytes[3..3 + raw.len()].copy_from_slice(&raw);
        let got: libc::timespec = read(&bytes[3..]).expect("long enough");
        assert_eq!((got.tv_sec, got.tv_nsec), (t.tv_sec, t.tv_nsec));
        assert!(read::<libc::timespec>(&bytes[3..3 + raw.len() - 1]).is_none());
        let z: libc::cmsghdr = zeroed();
        assert_eq!((z.cmsg_len, z.cmsg_level, z.cmsg_type), (0, 0, 0));
    }
}
