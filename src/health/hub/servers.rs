//! The servers (indexes into the hub's entries) that share one probe target. Most targets
//! have one, held inline, so a probe result reaches its server without reading another
//! allocation.

#[derive(Debug, Default)]
pub(super) enum Servers {
    #[default]
    None,
    One(usize),
    Many(Vec<usize>),
}

impl Servers {
    pub(super) fn push(&mut self, i: usize) {
        *self = match std::mem::take(self) {
            Servers::None => Servers::One(i),
            Servers::One(a) => Servers::Many(vec![a, i]),
            Servers::Many(mut v) => {
                v.push(i);
                Servers::Many(v)
            }
        };
    }

    pub(super) fn as_slice(&self) -> &[usize] {
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
        assert_eq!(s.as_slice(), &[] as &[usize]);
        for (i, want) in [(4, &[4][..]), (2, &[4, 2]), (9, &[4, 2, 9])] {
            s.push(i);
            assert_eq!(s.as_slice(), want);
        }
    }
}
