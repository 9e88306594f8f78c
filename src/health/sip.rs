//! The SIP wire format sipsteer needs for health checks (RFC 3261): building an OPTIONS
//! request (`request`, one encoder for UDP and TCP), parsing responses (compact headers,
//! folded lines, Content-Length framing; borrowed from the datagram as a [`Head`], or owned)
//! and matching them to the request by branch, Call-ID and CSeq.

use std::borrow::Cow;

mod request;
pub use request::{Ids, MAGIC, push_options_request};

use request::parse_hex;

/// A parsed SIP response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    pub code: u16,
    pub reason: String,
    pub branch: Option<String>,
    pub call_id: Option<String>,
    pub cseq: Option<(u32, String)>,
    pub retry_after: Option<u32>,
}

/// Why bytes are not (yet) a SIP response; the text is a probe's `bad response: ...` detail.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    /// More bytes are needed (TCP).
    #[error("truncated datagram")]
    Incomplete,
    #[error("{0}")]
    Bad(String),
}

/// Longest header section accepted (status line and headers); longer is a malformed reply.
pub const MAX_HEAD: usize = 16 * 1024;
/// Largest Content-Length accepted; larger is a malformed reply.
pub const MAX_BODY: usize = 16 * 1024;
/// The most one complete response can take: a TCP probe never buffers more.
pub const MAX_MESSAGE: usize = MAX_HEAD + 4 + MAX_BODY;

/// Parses one response at the start of `buf`, framed by Content-Length (TCP); returns it and
/// the bytes it took.
pub fn parse_response(buf: &[u8]) -> Result<(Response, usize), ParseError> {
    let Some(end) = head_end(buf)? else {
        return Err(ParseError::Incomplete);
    };
    let (r, content_length) = parse_head(&buf[..end])?;
    // Both terms are bounded, so this cannot overflow.
    let total = end + 4 + content_length;
    if buf.len() < total {
        return Err(ParseError::Incomplete);
    }
    Ok((r.into_owned(), total))
}

/// Parses a response received as one datagram. `truncated` says the datagram may have been
/// cut to the receive buffer: then the status line and the complete header lines are enough,
/// and the body is not required.
pub fn parse_datagram(buf: &[u8], truncated: bool) -> Result<Response, ParseError> {
    parse_datagram_head(buf, truncated).map(Head::into_owned)
}

/// Where the header section ends (the blank line), `None` if not yet received; an error when
/// it is longer than `MAX_HEAD`.
fn head_end(buf: &[u8]) -> Result<Option<usize>, ParseError> {
    let scan = &buf[..buf.len().min(MAX_HEAD + 4)];
    match scan.windows(4).position(|w| w == b"\r\n\r\n") {
        Some(end) => Ok(Some(end)),
        None if buf.len() > MAX_HEAD + 3 => Err(ParseError::Bad(format!(
            "headers longer than {} KiB",
            MAX_HEAD / 1024
        ))),
        None => Ok(None),
    }
}

/// The header lines with continuation lines unfolded; borrowed unless one was folded.
struct Lines<'a> {
    it: std::iter::Peekable<std::str::Split<'a, &'static str>>,
}

impl<'a> Iterator for Lines<'a> {
    type Item = Cow<'a, str>;

    fn next(&mut self) -> Option<Cow<'a, str>> {
        let mut line = Cow::Borrowed(self.it.next()?);
        while let Some(c) = self
            .it
            .next_if(|l| l.starts_with(' ') || l.starts_with('\t'))
        {
            let l = line.to_mut();
            l.push(' ');
            l.push_str(c.trim());
        }
        Some(line)
    }
}

/// `part`, a slice of `line`, borrowed for as long as `line` is (copied if `line` is owned).
fn part<'a>(line: &Cow<'a, str>, part: &str) -> Cow<'a, str> {
    if let Cow::Borrowed(l) = line {
        let start = (part.as_ptr() as usize).wrapping_sub(l.as_ptr() as usize);
        if let Some(p) = start
            .checked_add(part.len())
            .and_then(|end| l.get(start..end))
        {
            return Cow::Borrowed(p);
        }
    }
    Cow::Owned(part.to_owned())
}

/// Which header a name is (full or compact form, any case); `None` for one not read here.
fn header(name: &str) -> Option<Header> {
    const NAMES: [(&str, Header); 8] = [
        ("via", Header::Via),
        ("v", Header::Via),
        ("call-id", Header::CallId),
        ("i", Header::CallId),
        ("cseq", Header::CSeq),
        ("retry-after", Header::RetryAfter),
        ("content-length", Header::ContentLength),
        ("l", Header::ContentLength),
    ];
    let name = name.trim();
    NAMES
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, h)| *h)
}

/// The headers a response is matched and read by.
#[derive(Clone, Copy)]
enum Header {
    Via,
    CallId,
    CSeq,
    RetryAfter,
    ContentLength,
}

/// A response's status line and the headers it is matched by, borrowed from the bytes it was
/// read from (copied only from folded lines).
#[derive(Debug)]
pub struct Head<'a> {
    pub code: u16,
    pub reason: Cow<'a, str>,
    pub branch: Option<Cow<'a, str>>,
    pub call_id: Option<Cow<'a, str>>,
    pub cseq: Option<(u32, Cow<'a, str>)>,
    pub retry_after: Option<u32>,
}

impl Head<'_> {
    fn into_owned(self) -> Response {
        Response {
            code: self.code,
            reason: self.reason.into_owned(),
            branch: self.branch.map(Cow::into_owned),
            call_id: self.call_id.map(Cow::into_owned),
            cseq: self.cseq.map(|(n, m)| (n, m.into_owned())),
            retry_after: self.retry_after,
        }
    }
}

/// Like [`parse_datagram`], without copying what it reads.
pub fn parse_datagram_head(buf: &[u8], truncated: bool) -> Result<Head<'_>, ParseError> {
    let (head, framed) = match head_end(buf)? {
        Some(end) => (end, !truncated),
        None if truncated => {
            let end = buf.windows(2).rposition(|w| w == b"\r\n");
            (end.ok_or(ParseError::Incomplete)?, false)
        }
        None => return Err(ParseError::Incomplete),
    };
    let (r, content_length) = parse_head(&buf[..head])?;
    // Both terms are bounded, so this cannot overflow.
    if framed && buf.len() < head + 4 + content_length {
        return Err(ParseError::Incomplete);
    }
    Ok(r)
}

/// Parses the status line and headers (without the blank line); returns the response and
/// its Content-Length.
fn parse_head(head: &[u8]) -> Result<(Head<'_>, usize), ParseError> {
    let head =
        std::str::from_utf8(head).map_err(|_| ParseError::Bad("headers are not UTF-8".into()))?;
    let mut lines = Lines {
        it: head.split("\r\n").peekable(),
    };
    let status = lines
        .next()
        .ok_or_else(|| ParseError::Bad("empty message".into()))?;
    let mut parts = status.splitn(3, ' ');
    if parts.next() != Some("SIP/2.0") {
        return Err(ParseError::Bad(format!(
            "not a SIP response: `{}`",
            truncate(&status)
        )));
    }
    let code: u16 = parts
        .next()
        .and_then(|c| c.parse().ok())
        .filter(|c| (100..700).contains(c))
        .ok_or_else(|| ParseError::Bad(format!("bad status line `{}`", truncate(&status))))?;
    let mut r = Head {
        code,
        reason: part(&status, parts.next().unwrap_or("")),
        branch: None,
        call_id: None,
        cseq: None,
        retry_after: None,
    };
    let mut content_length = 0usize;
    for l in lines {
        let Some((name, value)) = l.split_once(':') else {
            return Err(ParseError::Bad(format!(
                "bad header line `{}`",
                truncate(&l)
            )));
        };
        let value = value.trim();
        match header(name) {
            Some(Header::Via) if r.branch.is_none() => {
                let first = value.split(',').next().unwrap_or("");
                r.branch = first
                    .split(';')
                    .find_map(|p| p.trim().strip_prefix("branch="))
                    .map(|b| part(&l, b));
            }
            Some(Header::CallId) => r.call_id = Some(part(&l, value)),
            Some(Header::CSeq) => {
                let mut it = value.split_whitespace();
                if let (Some(n), Some(m)) = (it.next().and_then(|n| n.parse().ok()), it.next()) {
                    r.cseq = Some((n, part(&l, m)));
                }
            }
            Some(Header::RetryAfter) => {
                r.retry_after = value
                    .split(|c: char| !c.is_ascii_digit())
                    .next()
                    .and_then(|v| v.parse().ok());
            }
            Some(Header::ContentLength) => content_length = parse_length(value)?,
            Some(Header::Via) | None => {}
        }
    }
    Ok((r, content_length))
}

/// A Content-Length value, at most `MAX_BODY`.
fn parse_length(value: &str) -> Result<usize, ParseError> {
    let bad = || ParseError::Bad(format!("bad Content-Length `{}`", truncate(value)));
    if value.is_empty() || !value.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    let digits = value.trim_start_matches('0');
    match digits.parse::<usize>() {
        Ok(n) if n <= MAX_BODY => Ok(n),
        _ if digits.is_empty() => Ok(0),
        _ => Err(ParseError::Bad(format!(
            "content-length `{}` exceeds the {MAX_BODY}-byte limit",
            truncate(value)
        ))),
    }
}

fn truncate(s: &str) -> &str {
    let mut end = s.len().min(60);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// The transaction number a branch carries after the magic cookie, if it is one of ours.
pub fn branch_id(branch: &str) -> Option<u64> {
    branch.strip_prefix(MAGIC).and_then(parse_hex)
}

/// Whether a response with this Call-ID and CSeq answers the OPTIONS request whose Call-ID
/// number is `call_id` (the branch is matched by the caller).
fn answers(call_id: Option<&str>, cseq: Option<(u32, &str)>, want: u64) -> bool {
    let call_id = call_id
        .and_then(|c| c.split('@').next())
        .and_then(parse_hex);
    let cseq = cseq.is_some_and(|(n, m)| n == 1 && m.eq_ignore_ascii_case("OPTIONS"));
    call_id == Some(want) && cseq
}

impl Head<'_> {
    /// The transaction number this response's branch carries, if it is one of ours.
    pub fn branch_id(&self) -> Option<u64> {
        self.branch.as_deref().and_then(branch_id)
    }

    /// Whether this answers the OPTIONS request whose Call-ID number is `call_id`.
    pub fn answers(&self, call_id: u64) -> bool {
        let cseq = self.cseq.as_ref().map(|(n, m)| (*n, m.as_ref()));
        answers(self.call_id.as_deref(), cseq, call_id)
    }
}

impl Response {
    /// Whether this answers the request with `ids`.
    pub fn matches(&self, ids: &Ids) -> bool {
        let cseq = self.cseq.as_ref().map(|(n, m)| (*n, m.as_str()));
        self.branch.as_deref().and_then(branch_id) == Some(ids.branch)
            && answers(self.call_id.as_deref(), cseq, ids.call_id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Transaction ids for tests of this module: branch `z9hG4bK...abc`, Call-ID `...c1`.
    fn ids() -> Ids {
        Ids {
            branch: 0xabc,
            tag: 0x71,
            call_id: 0xc1,
        }
    }

    /// `text` with the ids of [`ids`] written out in full.
    fn ours(text: &str) -> String {
        text.replace("z9hG4bKabc", "z9hG4bK0000000000000abc")
            .replace("c1@", "00000000000000c1@")
            .replace("Call-ID: c1\r", "Call-ID: 00000000000000c1\r")
    }

    #[test]
    fn parses_and_matches_responses() {
        let full = &ours(
            "SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP 10.0.0.1:40000;branch=z9hG4bKabc;rport=40000;received=10.0.0.1\r\nFrom: <sip:sipsteer@10.0.0.1>;tag=t1\r\nTo: <sip:x>;tag=9\r\nCall-ID: c1@10.0.0.1\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n",
        );
        let (r, n) = parse_response(full.as_bytes()).unwrap();
        assert_eq!((r.code, r.reason.as_str(), n), (200, "OK", full.len()));
        assert!(r.matches(&ids()));

        let compact = ours(
            "SIP/2.0 503 Service Unavailable\r\nv: SIP/2.0/UDP h;branch=z9hG4bKabc\r\ni: c1@h\r\nCSeq: 1 OPTIONS\r\nRetry-After: 30 (busy)\r\nl: 0\r\n\r\n",
        );
        let (r, _) = parse_response(compact.as_bytes()).unwrap();
        assert_eq!((r.code, r.retry_after), (503, Some(30)));
        assert!(r.matches(&ids()));

        let folded = ours(
            "SIP/2.0 404 Not Found\r\nVia: SIP/2.0/UDP h\r\n ;branch=z9hG4bKabc\r\nCall-ID: c1\r\nCSeq: 1 OPTIONS\r\n\r\n",
        );
        assert!(parse_response(folded.as_bytes()).unwrap().0.matches(&ids()));

        let other = full.replace("0000000000000abc", "0000000000000fff");
        assert!(!parse_response(other.as_bytes()).unwrap().0.matches(&ids()));
        let wrong_cseq = full.replace("CSeq: 1 OPTIONS", "CSeq: 2 INVITE");
        assert!(
            !parse_response(wrong_cseq.as_bytes())
                .unwrap()
                .0
                .matches(&ids())
        );

        let body = "SIP/2.0 200 OK\r\nContent-Length: 5\r\n\r\nhel";
        assert_eq!(parse_response(body.as_bytes()), Err(ParseError::Incomplete));
        assert_eq!(
            parse_response(b"SIP/2.0 200 OK\r\nVia: x"),
            Err(ParseError::Incomplete)
        );
        assert!(matches!(
            parse_response(b"HTTP/1.1 200 OK\r\n\r\n"),
            Err(ParseError::Bad(_))
        ));
        assert!(matches!(
            parse_response(b"SIP/2.0 abc OK\r\n\r\n"),
            Err(ParseError::Bad(_))
        ));
        assert!(matches!(
            parse_response(b"SIP/2.0 200 OK\r\nnocolon\r\n\r\n"),
            Err(ParseError::Bad(_))
        ));
        assert!(matches!(
            parse_response(&[0xff, 0xfe, b'\r', b'\n', b'\r', b'\n']),
            Err(ParseError::Bad(_))
        ));
    }

    #[test]
    fn datagram_heads_borrow_unless_a_line_was_folded() {
        let plain = b"SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP h;branch=z9hG4bKabc\r\ni: c1@h\r\nCSeq: 1 OPTIONS\r\n\r\n";
        let h = parse_datagram_head(plain, false).unwrap();
        assert!(matches!(h.reason, Cow::Borrowed("OK")));
        assert!(matches!(h.branch, Some(Cow::Borrowed("z9hG4bKabc"))));
        assert!(matches!(h.call_id, Some(Cow::Borrowed("c1@h"))));
        assert!(matches!(h.cseq, Some((1, Cow::Borrowed("OPTIONS")))));
        let folded = b"SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP h\r\n ;branch=z9hG4bKabc\r\n\r\n";
        let h = parse_datagram_head(folded, false).unwrap();
        assert!(matches!(h.branch, Some(Cow::Owned(ref b)) if b == "z9hG4bKabc"));
        assert_eq!(
            parse_datagram_head(b"SIP/2.0 200 OK\r\nl: 3\r\n\r\nab", false).err(),
            Some(ParseError::Incomplete)
        );
    }

    #[test]
    fn lengths_and_truncated_datagrams_are_bounded() {
        let huge = b"SIP/2.0 200 OK\r\nContent-Length: 99999999999999999999999\r\n\r\n";
        assert!(matches!(parse_response(huge), Err(ParseError::Bad(_))));
        let over = format!("SIP/2.0 200 OK\r\nl: {}\r\n\r\n", MAX_BODY + 1);
        assert!(matches!(
            parse_response(over.as_bytes()),
            Err(ParseError::Bad(_))
        ));
        let max = format!("SIP/2.0 200 OK\r\nl: 000{MAX_BODY}\r\n\r\n");
        assert_eq!(parse_response(max.as_bytes()), Err(ParseError::Incomplete));
        assert!(matches!(
            parse_response(b"SIP/2.0 200 OK\r\nl: +1\r\n\r\n"),
            Err(ParseError::Bad(_))
        ));
        let endless = [b"SIP/2.0 200 OK\r\nX: ".as_slice(), &[b'a'; MAX_HEAD]].concat();
        assert!(matches!(parse_response(&endless), Err(ParseError::Bad(_))));
        // A datagram cut inside a header: the complete lines before it are read.
        let cut = b"SIP/2.0 200 OK\r\nCall-ID: c1\r\nX-Pad: aaaa";
        assert_eq!(parse_datagram(cut, false), Err(ParseError::Incomplete));
        let r = parse_datagram(cut, true).unwrap();
        assert_eq!((r.code, r.call_id.as_deref()), (200, Some("c1")));
        let body_cut = b"SIP/2.0 486 Busy Here\r\nl: 100\r\n\r\nv=0";
        assert_eq!(parse_datagram(body_cut, true).unwrap().code, 486);
    }
}
