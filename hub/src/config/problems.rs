//! Problems and their positions: what the parser and the validator report.
//!
//! A [`ConfigProblem`] names the key at fault as a [`KeyPath`]
//! (`hub[1].name`); the parser turns it into a [`LocatedProblem`] with the
//! `LINE:COL` of that key in the file, and [`ConfigErrors`] prints them all,
//! one `FILE:LINE:COL: key: message` line each. [`LineIndex`] maps a byte
//! offset to a line and a column (the users file uses it too).

use std::fmt;

/// One step of a key path: `session`, `hub[1]`, …
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PathSeg {
    Key(String),
    Index(usize),
}

/// A key in the config, e.g. `session.timeout` or `hub[1].name`.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct KeyPath(pub Vec<PathSeg>);

impl KeyPath {
    pub(super) fn key(mut self, k: &str) -> Self {
        self.0.push(PathSeg::Key(k.to_owned()));
        self
    }
    pub(super) fn index(mut self, i: usize) -> Self {
        self.0.push(PathSeg::Index(i));
        self
    }
    pub(super) fn starts_with(&self, other: &KeyPath) -> bool {
        self.0.starts_with(&other.0)
    }
}

pub(super) fn path(k: &str) -> KeyPath {
    KeyPath::default().key(k)
}

impl fmt::Display for KeyPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, seg) in self.0.iter().enumerate() {
            match seg {
                PathSeg::Key(k) if i == 0 => write!(f, "{k}")?,
                PathSeg::Key(k) => write!(f, ".{k}")?,
                PathSeg::Index(n) => write!(f, "[{n}]")?,
            }
        }
        Ok(())
    }
}

/// A semantic problem found by [`Config::validate`](super::Config::validate),
/// without a file position.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigProblem {
    /// The key at fault.
    pub key: KeyPath,
    /// Another key involved (e.g. `session.keepalive` for a timeout that is
    /// too short); used for the position when `key` is not in the file.
    pub related: Option<KeyPath>,
    pub message: String,
}

impl fmt::Display for ConfigProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.key, self.message)
    }
}

/// Line and column, both counted from 1 (columns in characters).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Position {
    pub line: usize,
    pub column: usize,
}

/// A problem with its position in the file, when known.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LocatedProblem {
    pub position: Option<Position>,
    pub key: Option<String>,
    pub message: String,
}

/// Everything wrong with a config; displays one `FILE:LINE:COL: key: message`
/// line per problem, in file order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigErrors {
    /// The file (or `<config>`) the problems are in.
    pub origin: String,
    pub problems: Vec<LocatedProblem>,
}

impl ConfigErrors {
    /// Wraps problems of a config that has no source text (e.g. after
    /// command-line overrides).
    pub fn from_problems(origin: &str, problems: Vec<ConfigProblem>) -> Self {
        Self {
            origin: origin.to_owned(),
            problems: problems
                .into_iter()
                .map(|p| LocatedProblem {
                    position: None,
                    key: Some(p.key.to_string()),
                    message: p.message,
                })
                .collect(),
        }
    }
}

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, p) in self.problems.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{}:", self.origin)?;
            if let Some(pos) = p.position {
                write!(f, "{}:{}:", pos.line, pos.column)?;
            }
            match &p.key {
                Some(k) if !k.is_empty() => write!(f, " {k}: {}", p.message)?,
                _ => write!(f, " {}", p.message)?,
            }
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

/// Byte offset → line and column.
pub(crate) struct LineIndex<'a> {
    text: &'a str,
    starts: Vec<usize>,
}

impl<'a> LineIndex<'a> {
    pub(crate) fn new(text: &'a str) -> Self {
        let starts = std::iter::once(0)
            .chain(text.match_indices('\n').map(|(i, _)| i + 1))
            .collect();
        Self { text, starts }
    }

    pub(crate) fn position(&self, offset: usize) -> Position {
        let offset = offset.min(self.text.len());
        let line = self.starts.partition_point(|&s| s <= offset) - 1;
        let start = self.starts[line];
        // Count characters, not bytes; `offset` may sit inside a character.
        let column = self.text[start..]
            .char_indices()
            .take_while(|(i, _)| start + i < offset)
            .count()
            + 1;
        Position {
            line: line + 1,
            column,
        }
    }
}
