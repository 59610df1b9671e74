//! Parsing with recovery: report every problem of a file, not just the
//! first.
//!
//! The file is parsed into a spanned TOML tree first; a syntax error stops
//! there (the tree after it is a guess). Then serde reads the tree into the
//! typed structs, one bad key at a time: each error is recorded, its key
//! removed from the tree, and serde runs again (at most
//! `MAX_RECOVERY_ROUNDS` times). Last, the validator's problems are placed
//! at the keys they name, and everything is sorted into file order.

use std::ops::Range;

use serde::Deserialize;
use toml::de::{DeTable, DeValue};
use toml::Spanned;

use super::problems::{KeyPath, LineIndex, LocatedProblem, PathSeg};
use super::Config;

/// Bound on recovery rounds (each round removes one bad key).
const MAX_RECOVERY_ROUNDS: usize = 256;

pub(super) fn parse_and_validate(text: &str) -> Result<Config, Vec<LocatedProblem>> {
    let lines = LineIndex::new(text);
    let (mut tree, syntax) = DeTable::parse_recoverable(text);
    if !syntax.is_empty() {
        // The tree after a syntax error is a guess; report only the syntax.
        return Err(syntax_problems(&syntax, &lines));
    }
    let Recovered {
        config,
        mut problems,
        removed,
    } = deserialize_recovering(&mut tree, &lines);
    if let Some(config) = &config {
        problems.extend(semantic_problems(config, tree.get_ref(), &removed, &lines));
    }
    match config {
        Some(c) if problems.is_empty() => Ok(c),
        _ => {
            sort_problems(&mut problems);
            Err(problems)
        }
    }
}

/// The syntax errors of a file, in file order.
fn syntax_problems(syntax: &[toml::de::Error], lines: &LineIndex<'_>) -> Vec<LocatedProblem> {
    let mut out: Vec<LocatedProblem> = syntax
        .iter()
        .map(|e| LocatedProblem {
            position: e.span().map(|s| lines.position(s.start)),
            key: None,
            message: e.message().to_owned(),
        })
        .collect();
    sort_problems(&mut out);
    out
}

/// What [`deserialize_recovering`] got out of a syntactically valid tree.
struct Recovered {
    /// The config, once every bad key is removed; `None` when a problem
    /// could not be pinned to a key that can be removed.
    config: Option<Config>,
    /// One problem per bad key (type errors, unknown keys).
    problems: Vec<LocatedProblem>,
    /// The keys removed from the tree; they are at their defaults now.
    removed: Vec<KeyPath>,
}

/// Deserializes `tree` into a [`Config`]. serde stops at the first error:
/// record it, drop the key it points at and try again, so that all bad keys
/// are reported in one go.
fn deserialize_recovering(tree: &mut Spanned<DeTable<'_>>, lines: &LineIndex<'_>) -> Recovered {
    let mut problems = Vec::new();
    let mut removed: Vec<KeyPath> = Vec::new();
    let mut config = None;
    for _ in 0..MAX_RECOVERY_ROUNDS {
        match Config::deserialize(toml::de::Deserializer::from(tree.clone())) {
            Ok(c) => {
                config = Some(c);
                break;
            }
            Err(e) => {
                let at = e.span().map(|s| s.start);
                let key = at.and_then(|pos| entry_at(tree.get_ref(), pos));
                problems.push(LocatedProblem {
                    position: at.map(|p| lines.position(p)),
                    key: key.as_ref().map(|k| k.to_string()),
                    message: e.message().to_owned(),
                });
                match key {
                    Some(k) if remove_entry(tree.get_mut(), &k.0) => removed.push(k),
                    _ => break, // cannot recover: report what we have
                }
            }
        }
    }
    Recovered {
        config,
        problems,
        removed,
    }
}

/// The problems of [`Config::validate`], each placed at its key in the file
/// (or at the related key, or at the deepest part of the key's path that
/// is written).
fn semantic_problems(
    config: &Config,
    table: &DeTable<'_>,
    removed: &[KeyPath],
    lines: &LineIndex<'_>,
) -> Vec<LocatedProblem> {
    let mut problems = Vec::new();
    for p in config.validate() {
        // A key that was dropped for a type error is at its default
        // now; problems about it would only be noise.
        let touches_removed =
            |k: &KeyPath| removed.iter().any(|r| k.starts_with(r) || r.starts_with(k));
        if touches_removed(&p.key) || p.related.as_ref().is_some_and(touches_removed) {
            continue;
        }
        let span = find_span(table, &p.key.0, true)
            .or_else(|| {
                p.related
                    .as_ref()
                    .and_then(|r| find_span(table, &r.0, true))
            })
            .or_else(|| find_span(table, &p.key.0, false));
        problems.push(LocatedProblem {
            position: span.map(|s| lines.position(s.start)),
            key: Some(p.key.to_string()),
            message: p.message,
        });
    }
    problems
}

fn sort_problems(p: &mut [LocatedProblem]) {
    // Positioned problems in file order, then the others; stable otherwise.
    p.sort_by_key(|p| (p.position.is_none(), p.position));
}

/// The deepest table entry whose key or value contains byte `pos`.
fn entry_at(table: &DeTable<'_>, pos: usize) -> Option<KeyPath> {
    fn walk_value(v: &DeValue<'_>, pos: usize, here: &KeyPath) -> Option<KeyPath> {
        match v {
            DeValue::Table(t) => walk_table(t, pos, here),
            DeValue::Array(a) => a
                .iter()
                .enumerate()
                .find_map(|(i, item)| walk_value(item.get_ref(), pos, &here.clone().index(i))),
            _ => None,
        }
    }
    fn walk_table(t: &DeTable<'_>, pos: usize, here: &KeyPath) -> Option<KeyPath> {
        for (k, v) in t.iter() {
            let p = here.clone().key(k.get_ref());
            if let Some(deeper) = walk_value(v.get_ref(), pos, &p) {
                return Some(deeper);
            }
            if k.span().contains(&pos) || v.span().contains(&pos) {
                return Some(p);
            }
        }
        None
    }
    walk_table(table, pos, &KeyPath::default())
}

/// Removes the table entry at `path` (which ends in a key). True if removed.
fn remove_entry(table: &mut DeTable<'_>, path: &[PathSeg]) -> bool {
    let Some((PathSeg::Key(last), parents)) = path.split_last() else {
        return false;
    };
    let mut t = table;
    let mut segs = parents.iter().peekable();
    while let Some(seg) = segs.next() {
        let PathSeg::Key(k) = seg else { return false };
        let Some(mut v) = t.get_mut(k.as_str()).map(|v| v.get_mut()) else {
            return false;
        };
        while let Some(PathSeg::Index(i)) = segs.peek() {
            let DeValue::Array(a) = v else { return false };
            let Some(item) = a.get_mut(*i) else {
                return false;
            };
            v = item.get_mut();
            segs.next();
        }
        let DeValue::Table(inner) = v else {
            return false;
        };
        t = inner;
    }
    t.remove(last.as_str()).is_some()
}

/// The span of the key at `path` (of the array element for an index). With
/// `exact == false`, the span of the deepest part of the path that exists.
fn find_span(table: &DeTable<'_>, path: &[PathSeg], exact: bool) -> Option<Range<usize>> {
    let mut best: Option<Range<usize>> = None;
    let mut cur: Option<&DeValue<'_>> = None;
    for seg in path {
        match seg {
            PathSeg::Key(k) => {
                let t = match cur {
                    None => table,
                    Some(DeValue::Table(t)) => t,
                    _ => return if exact { None } else { best },
                };
                let Some((key, value)) = t.iter().find(|(key, _)| key.get_ref() == k) else {
                    return if exact { None } else { best };
                };
                best = Some(key.span());
                cur = Some(value.get_ref());
            }
            PathSeg::Index(i) => {
                let Some(DeValue::Array(a)) = cur else {
                    return if exact { None } else { best };
                };
                let Some(item) = a.get(*i) else {
                    return if exact { None } else { best };
                };
                best = Some(item.span());
                cur = Some(item.get_ref());
            }
        }
    }
    best
}
