//! A value as a reply writes it, and what becomes of it: load, or a rejection with its reason
//! (NaN, infinite, negative, not a number) and its text.

/// Longest Prometheus error message, result type or rejected value text kept.
const MAX_TEXT: usize = 200;

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

/// A value as written: a number, or the text that is not one.
pub(super) type Parsed = Result<f64, String>;

pub(super) fn parse_value(text: &str) -> Parsed {
    text.parse::<f64>().map_err(|_| cut(text))
}

pub(super) fn sample(p: &Parsed) -> Sample {
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
pub(super) fn cut(s: &str) -> String {
    let mut end = s.len().min(MAX_TEXT);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s[..end].to_owned()
}
