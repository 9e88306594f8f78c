//! Config errors: every problem found while loading, each with file, line, column and YAML path.

use std::fmt;
use std::path::{Path, PathBuf};

use serde_saphyr::{Location, Spanned};

/// One problem in one file, printed as `file:line:col: path: message`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub file: PathBuf,
    /// 1-based; 0 when the problem is about the file as a whole.
    pub line: u64,
    pub column: u64,
    /// The YAML path (`records.www.CNAME`), empty for syntax errors.
    pub path: String,
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file.display())?;
        if self.line > 0 {
            write!(f, ":{}:{}", self.line, self.column)?;
        }
        if !self.path.is_empty() {
            write!(f, ": {}", self.path)?;
        }
        write!(f, ": {}", self.message)
    }
}

/// Every error of one load, in file order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

/// Collects errors for one file while validating it.
pub(crate) struct Sink<'a> {
    pub file: &'a Path,
    pub errors: &'a mut Vec<ConfigError>,
}

impl Sink<'_> {
    /// An error at a YAML location.
    pub(crate) fn at(
        &mut self,
        loc: Location,
        path: impl Into<String>,
        message: impl Into<String>,
    ) {
        self.errors.push(ConfigError {
            file: self.file.to_path_buf(),
            line: loc.line(),
            column: loc.column(),
            path: path.into(),
            message: message.into(),
        });
    }

    /// An error about a spanned value.
    pub(crate) fn on<T>(
        &mut self,
        v: &Spanned<T>,
        path: impl Into<String>,
        message: impl Into<String>,
    ) {
        self.at(v.referenced, path, message);
    }

    /// An error about the file as a whole.
    pub(crate) fn file(&mut self, message: impl Into<String>) {
        self.errors.push(ConfigError {
            file: self.file.to_path_buf(),
            line: 0,
            column: 0,
            path: String::new(),
            message: message.into(),
        });
    }
}

/// Turns a YAML syntax or shape error into a located config error.
pub(super) fn from_yaml(file: &Path, err: &serde_saphyr::Error) -> ConfigError {
    let (line, column) = err.location().map_or((0, 0), |l| (l.line(), l.column()));
    let mut message = err.without_snippet().to_string();
    if let Some(i) = message.rfind(" at line ") {
        message.truncate(i);
    }
    if let Some(rest) = message.strip_prefix("duplicate mapping key: ") {
        let key = rest.split(',').next().unwrap_or(rest);
        message = format!("duplicate key `{key}`");
    }
    ConfigError {
        file: file.to_path_buf(),
        line,
        column,
        path: String::new(),
        message,
    }
}

/// An error about a file as a whole (no line or column).
pub(super) fn whole_file(path: &Path, message: impl Into<String>) -> ConfigError {
    ConfigError {
        file: path.to_path_buf(),
        line: 0,
        column: 0,
        path: String::new(),
        message: message.into(),
    }
}
