//! The walk over one reply's JSON with serde visitors: nothing is built but the samples of
//! the query's users; a series' labels are looked up in the matcher as they are read, and
//! every other value is skipped.

use std::cell::{Cell, RefCell};
use std::fmt;
use std::io::Read;

use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};

use super::matcher::Matcher;
use super::sample::{Parsed, Sample, cut, parse_value, sample};

/// What a walk over one reply found.
pub(super) struct Walked {
    pub success: Option<bool>,
    pub error: Option<String>,
    pub kind: Option<Kind>,
    /// The value of a scalar result.
    pub scalar: Option<Parsed>,
    /// Per user, the sample of its first series.
    pub samples: Vec<Option<Sample>>,
    pub series: usize,
    /// The value of the first series.
    pub first: Option<Parsed>,
}

/// Why a walk stopped.
pub(super) enum Stopped {
    /// More series than the cap.
    Series,
    /// The JSON reader's error (also when the bytes passed a bound).
    Json(String),
}

/// Walks the reply read from `r`, keeping the samples of `m`'s users.
pub(super) fn walk<R: Read>(r: R, m: &Matcher, max_series: usize) -> Result<Walked, Stopped> {
    let ctx = Ctx {
        m,
        max_series,
        series: Cell::new(0),
        over: Cell::new(false),
        samples: RefCell::new(vec![None; m.users]),
        first: RefCell::new(None),
        scratch: RefCell::new(Vec::new()),
    };
    let top = {
        let mut de = serde_json::Deserializer::from_reader(r);
        TopSeed(&ctx)
            .deserialize(&mut de)
            .and_then(|t| de.end().map(|()| t))
    };
    let top = top.map_err(|e| {
        if ctx.over.get() {
            Stopped::Series
        } else {
            Stopped::Json(e.to_string())
        }
    })?;
    let data = top.data.unwrap_or_default();
    Ok(Walked {
        success: top.success,
        error: top.error,
        kind: data.kind,
        scalar: data.scalar,
        samples: ctx.samples.into_inner(),
        series: ctx.series.get(),
        first: ctx.first.into_inner(),
    })
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

pub(super) enum Kind {
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
