//! The bounds a reply is read within, checked on its bytes before the JSON reader sees them.

use std::io::{self, Read};

/// Longest string or number in a reply, in bytes.
pub const MAX_TOKEN: usize = 64 << 10;
/// Deepest nesting of arrays and objects in a reply (a reply nests 5 deep).
pub const MAX_DEPTH: usize = 32;

/// Stops a read at a string or bare token (number, literal) longer than [`MAX_TOKEN`], which
/// bounds the buffer the JSON reader keeps each string in, and at nesting deeper than
/// [`MAX_DEPTH`], which bounds the stack it skips values with.
pub(super) struct TokenBound<R> {
    inner: R,
    in_string: bool,
    escape: bool,
    run: usize,
    depth: usize,
    pub(super) too_long: bool,
    pub(super) too_deep: bool,
}

impl<R> TokenBound<R> {
    pub(super) fn new(inner: R) -> Self {
        TokenBound {
            inner,
            in_string: false,
            escape: false,
            run: 0,
            depth: 0,
            too_long: false,
            too_deep: false,
        }
    }

    /// Takes one byte; false when a bound is passed.
    fn step(&mut self, b: u8) -> bool {
        if self.in_string {
            if self.escape {
                self.escape = false;
            } else if b == b'\\' {
                self.escape = true;
            } else if b == b'"' {
                self.in_string = false;
                self.run = 0;
                return true;
            }
        } else {
            match b {
                b'"' => {
                    self.in_string = true;
                    self.run = 0;
                    return true;
                }
                b'{' | b'[' => {
                    self.run = 0;
                    self.depth += 1;
                    self.too_deep = self.depth > MAX_DEPTH;
                    return !self.too_deep;
                }
                b'}' | b']' => {
                    self.run = 0;
                    self.depth = self.depth.saturating_sub(1);
                    return true;
                }
                b',' | b':' | b' ' | b'\t' | b'\n' | b'\r' => {
                    self.run = 0;
                    return true;
                }
                _ => {}
            }
        }
        self.run += 1;
        self.too_long = self.run > MAX_TOKEN;
        !self.too_long
    }
}

impl<R: Read> Read for TokenBound<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        for &b in buf.get(..n).unwrap_or_default() {
            if !self.step(b) {
                return Err(io::Error::other("reply over a bound"));
            }
        }
        Ok(n)
    }
}
