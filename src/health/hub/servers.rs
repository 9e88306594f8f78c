//! The servers (indexes into the hub's entries, each with the index of its lane the target
//! checks) that share one probe target. Most targets
//! have one, held inline, so a probe result reaches its server without reading another
//! allocation.

#[derive(Debug, Default)]
pub(super) enum Servers {
    #[default]
    None,
    One((usize, u8)),
    Many(Vec<(usize, u8)>),
}

impl Servers {
    pub(super) fn push(&mut self, i: (usize, u8)) {
        *self = match std::mem::take(self) {
            Servers::None => Servers::One(i),
            Servers::One(a) => Servers::Many(vec![a, i]),
            Servers::Many(mut v) => {
                v.push(i);
                Servers::Many(v)
            }
        };
    }

    pub(super) fn as_slice(&self) -> &[(usize, u8)] {
        match self {
            Servers::None => &[],
            Servers::One(i) => std::slice::from_ref(i),
            Servers::Many(v) => v,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn servers_keep_their_order() {
        let mut s = Servers::default();
        assert_eq!(s.as_slice(), &[] as &[(usize, u8)]);
        for (i, want) in [
            ((4, 0), &[(4, 0)][..]),
            ((2, 1), &[(4, 0), (2, 1)]),
            ((9, 0), &[(4, 0), (2, 1), (9, 0)]),
        ] {
            s.push(i);
            assert_eq!(s.as_slice(), want);
        }
    }
}
