//! One instant query's reply, read as it arrives and never built as a tree: each series is
//! looked up by label in a [`Matcher`] built once per config, the values of the series that
//! belong to a server are kept, and everything else is skipped. What a reply costs is bounded
//! by the servers of the query, not by the reply: series are counted against a cap, no string
//! or number may be longer than [`MAX_TOKEN`] and nothing may nest deeper than [`MAX_DEPTH`]
//! (skipped values are skipped without recursion, but with a stack of one byte per level). NaN, infinite and negative values are
//! kept as rejections with their reason, never taken as load.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::fmt;
use std::io::{self, BufReader, Read};

use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};

/// Longest string or number in a reply, in bytes.
pub const MAX_TOKEN: usize = 64 << 10;
/// Deepest nesting of arrays and objects in a reply (a reply nests 5 deep).
pub const MAX_DEPTH: usize = 32;
/// Longest Prometheus error message, result type or rejected value text kept.
const MAX_TEXT: usize = 200;

/// Which users of one query (servers, by their position in the query's user list) a series
/// belongs to, by label name and value.
#[derive(Debug, Default)]
pub struct Matcher {
    by_label: HashMap<String, HashMap<String, Vec<u32>>>,
    users: usize,
}

impl Matcher {
    /// One item per user: the label and the value that pick its series out of a reply.
    pub fn new<'a>(users: impl IntoIterator<Item = (&'a str, &'a str)>) -> Matcher {
        let mut m = Matcher::default();
        for (label, value) in users {
            let i = u32::try_from(m.users).unwrap_or(u32::MAX);
            m.by_label
                .entry(label.to_owned())
                .or_default()
                .entry(value.to_owned())
                .or_default()
                .push(i);
            m.users += 1;
        }
        m
    }

    /// How many users the query has.
    pub fn users(&self) -> usize {
        self.users
    }
}

/// Why a value was not taken as load.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    Nan,
    /// `+Inf` or `-Inf`.
    Inf,
    Negative,
    /// Not a number at all.
    NotANumber,
}

impl Reason {
    pub const ALL: [Reason; 4] = [
        Reason::Nan,
        Reason::Inf,
        Reason::Negative,
        Reason::NotANumber,
    ];

    /// The name in metric labels and `/v1/status`.
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::Nan => "nan",
            Reason::Inf => "inf",
            Reason::Negative => "negative",
            Reason::NotANumber => "not_a_number",
        }
    }
}

/// What the series of one user carried.
#[derive(Debug, Clone, PartialEq)]
pub enum Sample {
    Value(f64),
    /// Refused: why, and the value as Prometheus wrote it (cut to a few hundred bytes).
    Rejected(Reason, String),
}

/// What one reply holds for the users of its query.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Reply {
    /// Per user: the sample of its first series, if the reply had one.
    pub samples: Vec<Option<Sample>>,
    /// Series in the reply (1 for a scalar).
    pub series: usize,
}

/// Why a reply gave nothing.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReplyError {
    #[error("reply is not JSON: {0}")]
    NotJson(String),
    /// Prometheus answered with an error of its own.
    #[error("prometheus says: {0}")]
    Failed(String),
    #[error("unsupported result type {0} (use an instant vector or scalar query)")]
    ResultType(String),
    #[error("reply has more than {0} series (load.max_series)")]
    TooManySeries(usize),
    #[error("reply holds a string or number longer than {MAX_TOKEN} bytes")]
    TokenTooLong,
    #[error("reply nests deeper than {MAX_DEPTH} levels")]
    TooDeep,
}

/// Reads one reply from `r`, keeping the samples of `m`'s users; fails past `max_series`.
pub fn read_reply<R: Read>(r: R, m: &Matcher, max_series: usize) -> Result<Reply, ReplyError> {
    let ctx = Ctx {
        m,
        max_series,
        series: Cell::new(0),
        over: Cell::new(false),
        samples: RefCell::new(vec![None; m.users]),
        first: RefCell::new(None),
        scratch: RefCell::new(Vec::new()),
    };
    let mut bound = TokenBound::new(r);
    let top = {
        let mut de = serde_json::Deserializer::from_reader(BufReader::new(&mut bound));
        TopSeed(&ctx)
            .deserialize(&mut de)
            .and_then(|t| de.end().map(|()| t))
    };
    let top = top.map_err(|e| {
        if ctx.over.get() {
            ReplyError::TooManySeries(max_series)
        } else if bound.too_long {
            ReplyError::TokenTooLong
        } else if bound.too_deep {
            ReplyError::TooDeep
        } else {
            ReplyError::NotJson(e.to_string())
        }
    })?;
    if top.success != Some(true) {
        let msg = top.error.unwrap_or_else(|| "query failed".to_owned());
        return Err(ReplyError::Failed(msg));
    }
    let data = top.data.unwrap_or_default();
    let mut samples = ctx.samples.into_inner();
    let mut series = ctx.series.get();
    let only = |p: Option<Parsed>| p.map(|p| sample(&p));
    match data.kind {
        Some(Kind::Vector) => {
            if m.users == 1 && series == 1 && samples[0].is_none() {
                samples[0] = only(ctx.first.into_inner());
            }
        }
        Some(Kind::Scalar) => {
            samples.iter_mut().for_each(|s| *s = None);
            if m.users == 1 {
                samples[0] = only(data.scalar);
            }
            series = 1;
        }
        Some(Kind::Other(t)) => return Err(ReplyError::ResultType(t)),
        None => return Err(ReplyError::ResultType("none".to_owned())),
    }
    Ok(Reply { samples, series })
}

/// A value as written: a number, or the text that is not one.
type Parsed = Result<f64, String>;

fn parse_value(text: &str) -> Parsed {
    text.parse::<f64>().map_err(|_| cut(text))
}

fn sample(p: &Parsed) -> Sample {
    match *p {
        Ok(v) if v.is_nan() => Sample::Rejected(Reason::Nan, "NaN".to_owned()),
        Ok(v) if v.is_infinite() => {
            let shown = if v > 0.0 { "+Inf" } else { "-Inf" };
            Sample::Rejected(Reason::Inf, shown.to_owned())
        }
        Ok(v) if v < 0.0 => Sample::Rejected(Reason::Negative, v.to_string()),
        Ok(v) => Sample::Value(v),
        Err(ref text) => Sample::Rejected(Reason::NotANumber, text.clone()),
    }
}

/// `s` cut to at most [`MAX_TEXT`] bytes on a character boundary.
fn cut(s: &str) -> String {
    let mut end = s.len().min(MAX_TEXT);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s[..end].to_owned()
}

/// The state of one read, shared by the visitors.
struct Ctx<'m> {
    m: &'m Matcher,
    max_series: usize,
    series: Cell<usize>,
    /// Set when the series cap stopped the read.
    over: Cell<bool>,
    samples: RefCell<Vec<Option<Sample>>>,
    /// The value of the first series (taken by a query's only user when it is alone).
    first: RefCell<Option<Parsed>>,
    /// Kept across series: the user lists one series matched.
    scratch: RefCell<Vec<&'m [u32]>>,
}

/// Stops a read at a string or bare token (number, literal) longer than [`MAX_TOKEN`], which
/// bounds the buffer the JSON reader keeps each string in, and at nesting deeper than
/// [`MAX_DEPTH`], which bounds the stack it skips values with.
struct TokenBound<R> {
    inner: R,
    in_string: bool,
    escape: bool,
    run: usize,
    depth: usize,
    too_long: bool,
    too_deep: bool,
}

impl<R> TokenBound<R> {
    fn new(inner: R) -> Self {
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

#[derive(Default)]
struct Top {
    success: Option<bool>,
    error: Option<String>,
    data: Option<Data>,
}

#[derive(Default)]
struct Data {
    kind: Option<Kind>,
    scalar: Option<Parsed>,
}

enum Kind {
    Vector,
    Scalar,
    Other(String),
}

/// Reads a string with a function of it (no copy kept unless the function makes one).
struct Str<F>(F, &'static str);

impl<'de, T, F: FnOnce(&str) -> T> DeserializeSeed<'de> for Str<F> {
    type Value = T;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<T, D::Error> {
        d.deserialize_str(self)
    }
}

impl<'de, T, F: FnOnce(&str) -> T> Visitor<'de> for Str<F> {
    type Value = T;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str(self.1)
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<T, E> {
        Ok((self.0)(v))
    }
}

struct TopSeed<'c, 'm>(&'c Ctx<'m>);

impl<'de> DeserializeSeed<'de> for TopSeed<'_, '_> {
    type Value = Top;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Top, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for TopSeed<'_, '_> {
    type Value = Top;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a Prometheus API reply")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Top, A::Error> {
        let mut top = Top::default();
        while let Some(key) = map.next_key_seed(Str(key_of, "a key"))? {
            match key {
                Key::Status => {
                    top.success =
                        Some(map.next_value_seed(Str(|s: &str| s == "success", "a status"))?);
                }
                Key::Error => top.error = Some(map.next_value_seed(Str(cut, "a message"))?),
                Key::Data => top.data = Some(map.next_value_seed(DataSeed(self.0))?),
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(top)
    }
}

/// The keys read anywhere in a reply; any other is skipped.
enum Key {
    Status,
    Error,
    Data,
    ResultType,
    Result,
    Metric,
    Value,
    Other,
}

fn key_of(k: &str) -> Key {
    match k {
        "status" => Key::Status,
        "error" => Key::Error,
        "data" => Key::Data,
        "resultType" => Key::ResultType,
        "result" => Key::Result,
        "metric" => Key::Metric,
        "value" => Key::Value,
        _ => Key::Other,
    }
}

struct DataSeed<'c, 'm>(&'c Ctx<'m>);

impl<'de> DeserializeSeed<'de> for DataSeed<'_, '_> {
    type Value = Data;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Data, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for DataSeed<'_, '_> {
    type Value = Data;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a query result")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Data, A::Error> {
        let mut data = Data::default();
        while let Some(key) = map.next_key_seed(Str(key_of, "a key"))? {
            match key {
                Key::ResultType => {
                    let kind = |s: &str| match s {
                        "vector" => Kind::Vector,
                        "scalar" => Kind::Scalar,
                        other => Kind::Other(cut(other)),
                    };
                    data.kind = Some(map.next_value_seed(Str(kind, "a result type"))?);
                }
                Key::Result => data.scalar = map.next_value_seed(ResultSeed(self.0))?,
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(data)
    }
}

/// The `result` array: series (a vector) or `[time, "value"]` (a scalar), whichever it is;
/// gives the scalar's value if it was one.
struct ResultSeed<'c, 'm>(&'c Ctx<'m>);

impl<'de> DeserializeSeed<'de> for ResultSeed<'_, '_> {
    type Value = Option<Parsed>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Option<Parsed>, D::Error> {
        d.deserialize_seq(self)
    }
}

impl<'de> Visitor<'de> for ResultSeed<'_, '_> {
    type Value = Option<Parsed>;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a result array")
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Option<Parsed>, A::Error> {
        let mut index = 0usize;
        let mut scalar = None;
        while let Some(e) = seq.next_element_seed(ElementSeed(self.0))? {
            if index == 1
                && let Element::Text(p) = e
            {
                scalar = Some(p);
            }
            index += 1;
        }
        Ok(if index == 2 { scalar } else { None })
    }
}

enum Element {
    Series,
    Text(Parsed),
    Other,
}

struct ElementSeed<'c, 'm>(&'c Ctx<'m>);

impl<'de> DeserializeSeed<'de> for ElementSeed<'_, '_> {
    type Value = Element;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Element, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for ElementSeed<'_, '_> {
    type Value = Element;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a series or a sample")
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Element, E> {
        Ok(Element::Text(parse_value(v)))
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<Element, E> {
        Ok(Element::Other)
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> Result<Element, E> {
        Ok(Element::Other)
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<Element, E> {
        Ok(Element::Other)
    }
    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Element, E> {
        Ok(Element::Other)
    }
    fn visit_unit<E: de::Error>(self) -> Result<Element, E> {
        Ok(Element::Other)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Element, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(Element::Other)
    }
    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Element, A::Error> {
        let ctx = self.0;
        let n = ctx.series.get() + 1;
        ctx.series.set(n);
        if n > ctx.max_series {
            ctx.over.set(true);
            return Err(de::Error::custom("too many series"));
        }
        series(ctx, map, n == 1)?;
        Ok(Element::Series)
    }
}

/// One series: its labels looked up, its value kept for the users it belongs to.
fn series<'de, A: MapAccess<'de>>(ctx: &Ctx<'_>, mut map: A, first: bool) -> Result<(), A::Error> {
    let mut matched = std::mem::take(&mut *ctx.scratch.borrow_mut());
    matched.clear();
    let mut value = None;
    while let Some(key) = map.next_key_seed(Str(key_of, "a key"))? {
        match key {
            Key::Metric => map.next_value_seed(LabelsSeed {
                m: ctx.m,
                out: &mut matched,
            })?,
            Key::Value => value = map.next_value_seed(ValueSeed)?,
            _ => {
                map.next_value::<IgnoredAny>()?;
            }
        }
    }
    if first {
        ctx.first.borrow_mut().clone_from(&value);
    }
    if let Some(v) = &value
        && !matched.is_empty()
    {
        let mut samples = ctx.samples.borrow_mut();
        for &u in matched.iter().flat_map(|users| users.iter()) {
            if let Some(slot) = samples.get_mut(u as usize)
                && slot.is_none()
            {
                *slot = Some(sample(v));
            }
        }
    }
    *ctx.scratch.borrow_mut() = matched;
    Ok(())
}

/// A series' labels: each one a user matches on is looked up by its value.
struct LabelsSeed<'o, 'm> {
    m: &'m Matcher,
    out: &'o mut Vec<&'m [u32]>,
}

impl<'de> DeserializeSeed<'de> for LabelsSeed<'_, '_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for LabelsSeed<'_, '_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a map of labels")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let by_label = &self.m.by_label;
        while let Some(values) = map.next_key_seed(Str(|k: &str| by_label.get(k), "a label"))? {
            match values {
                Some(values) => {
                    let users =
                        map.next_value_seed(Str(|v: &str| values.get(v), "a label value"))?;
                    if let Some(users) = users {
                        self.out.push(users);
                    }
                }
                None => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(())
    }
}

/// A sample `[time, "value"]`: the value.
struct ValueSeed;

impl<'de> DeserializeSeed<'de> for ValueSeed {
    type Value = Option<Parsed>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Option<Parsed>, D::Error> {
        d.deserialize_seq(self)
    }
}

impl<'de> Visitor<'de> for ValueSeed {
    type Value = Option<Parsed>;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a sample [time, \"value\"]")
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Option<Parsed>, A::Error> {
        if seq.next_element::<IgnoredAny>()?.is_none() {
            return Ok(None);
        }
        let v = seq.next_element_seed(Str(parse_value, "a value string"))?;
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(v)
    }
}

#[cfg(test)]
mod tests;
