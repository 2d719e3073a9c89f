//! One configuration file's text: TOML parsing with errors that name the line and the key, and
//! the checks every role's file shares (WWNs, addresses, bounded integers).

use std::collections::BTreeMap;
use std::fmt::Display;
use std::fs;
use std::net::SocketAddr;
use std::ops::Range;
use std::path::{Path, PathBuf};

use fc_frames::Wwn;
use serde::Deserialize;
use toml::de::{DeTable, DeValue};
use toml::Spanned;

use super::ConfigFileError;

/// A file's name (for messages) and text.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Source<'a> {
    file: &'a str,
    text: &'a str,
}

impl<'a> Source<'a> {
    /// The text `text` of the file called `file` in messages.
    pub(crate) fn new(file: &'a str, text: &'a str) -> Source<'a> {
        Source { file, text }
    }

    /// The line (from 1) holding byte `offset`.
    pub(crate) fn line(&self, offset: usize) -> usize {
        let end = offset.min(self.text.len());
        self.text.as_bytes()[..end]
            .iter()
            .filter(|&&b| b == b'\n')
            .count()
            + 1
    }

    /// An error about `key`, whose text spans `span`.
    pub(crate) fn error(
        &self,
        span: Range<usize>,
        key: impl Into<String>,
        message: impl Display,
    ) -> ConfigFileError {
        ConfigFileError::Key {
            file: self.file.to_owned(),
            line: self.line(span.start),
            key: key.into(),
            message: message.to_string(),
        }
    }

    /// The document deserialized into `T`. Syntax errors and serde errors (unknown or missing
    /// keys, wrong types) are reported with the line and the path of the key at the error.
    pub(crate) fn deserialize<T: Deserialize<'a>>(&self) -> Result<T, ConfigFileError> {
        let doc = match DeTable::parse(self.text) {
            Ok(doc) => doc,
            Err(e) => {
                // The partly parsed document still names the keys before the error.
                let (partial, _) = DeTable::parse_recoverable(self.text);
                return Err(self.toml_error(partial.get_ref(), &e));
            }
        };
        T::deserialize(toml::de::Deserializer::from(doc.clone()))
            .map_err(|e| self.toml_error(doc.get_ref(), &e))
    }

    /// A parser or serde error, with the key found from its span in `doc`.
    fn toml_error(&self, doc: &DeTable<'_>, e: &toml::de::Error) -> ConfigFileError {
        let message = e
            .message()
            .trim_end()
            .replace("expected i64", "expected an integer")
            .replace("expected u32", "expected an integer in 0..=4294967295");
        let Some(span) = e.span() else {
            return ConfigFileError::Syntax {
                file: self.file.to_owned(),
                line: 1,
                message,
            };
        };
        let line = self.line(span.start);
        let missing = backquoted(&message, "missing field ");
        // A key missing from the root table is reported at the root's empty span 0..0, which
        // would otherwise name the first key of the file.
        let mut key = match missing {
            Some(_) if span.is_empty() => String::new(),
            _ => key_at(doc, span.start, false)
                .or_else(|| key_at(doc, span.start, true))
                .or_else(|| self.key_on_line(line))
                .unwrap_or_default(),
        };
        // A missing key is reported at its table; name the key itself.
        if let Some(missing) = missing {
            if !key.is_empty() {
                key.push('.');
            }
            key.push_str(missing);
        }
        if key.is_empty() {
            ConfigFileError::Syntax {
                file: self.file.to_owned(),
                line,
                message,
            }
        } else {
            self.error(span, key, message)
        }
    }

    /// The key written on `line` (a `key =` or a table header), read from the text: for the
    /// syntax errors whose place no parsed key spans, such as a key given twice. Array tables
    /// are counted (`[[zoneset]]` ... `[[zoneset.zone]]` is `zoneset[1].zone[0]`).
    fn key_on_line(&self, line: usize) -> Option<String> {
        // The last index of each array table by its written name, and the element counts by
        // resolved path.
        let mut last: BTreeMap<String, usize> = BTreeMap::new();
        let mut counts: BTreeMap<String, usize> = BTreeMap::new();
        let mut table = String::new();
        for (n, text) in self.text.lines().enumerate().take(line) {
            let here = n + 1 == line;
            let t = text.trim_start();
            if let Some(header) = t.strip_prefix('[') {
                let array = header.starts_with('[');
                let name: String = header
                    .trim_start_matches('[')
                    .chars()
                    .take_while(|&c| c != ']' && c != '#')
                    .filter(|c| !c.is_whitespace())
                    .collect();
                table = resolve(&name, &last);
                if array {
                    let count = counts.entry(table.clone()).or_insert(0);
                    last.insert(name, *count);
                    table = format!("{table}[{count}]");
                    *count += 1;
                }
                if here {
                    return (!name_is_empty(&table)).then_some(table);
                }
            } else if here {
                let (k, _) = t.split_once('=')?;
                let k: String = k.chars().filter(|c| !c.is_whitespace()).collect();
                if k.is_empty() || k.starts_with('#') {
                    return None;
                }
                return Some(if table.is_empty() {
                    k
                } else {
                    format!("{table}.{k}")
                });
            }
        }
        None
    }
}

/// `a.b.c` with each prefix that is an array table given its last index: `a[1].b.c`.
fn resolve(name: &str, last: &BTreeMap<String, usize>) -> String {
    let mut raw = String::new();
    let mut out = String::new();
    let parts: Vec<&str> = name.split('.').collect();
    for (i, part) in parts.iter().enumerate() {
        if i > 0 {
            raw.push('.');
            out.push('.');
        }
        raw.push_str(part);
        out.push_str(part);
        if i + 1 < parts.len() {
            if let Some(idx) = last.get(&raw) {
                out.push_str(&format!("[{idx}]"));
            }
        }
    }
    out
}

/// True for a header with no name (`[]`).
fn name_is_empty(path: &str) -> bool {
    path.is_empty() || path.starts_with('[')
}

/// Reads the file at `path`; returns its name for messages, its text and its folder.
pub(crate) fn read(path: &Path) -> Result<(String, String, PathBuf), ConfigFileError> {
    let file = path.display().to_string();
    let text = fs::read_to_string(path).map_err(|source| ConfigFileError::Read {
        file: file.clone(),
        source,
    })?;
    let base = path.parent().map(Path::to_path_buf).unwrap_or_default();
    Ok((file, text, base))
}

/// `name` in `` prefix`name`... ``.
fn backquoted<'m>(message: &'m str, prefix: &str) -> Option<&'m str> {
    let rest = message.strip_prefix(prefix)?.strip_prefix('`')?;
    rest.split('`').next()
}

/// The path (`lun[1].tier`) of the deepest key or value whose text holds byte `offset`, or
/// with `at_end` ends at it (an unterminated string's error is just past its text). Table
/// headers are the spans of their tables, so a table's keys lie outside its span and the whole
/// tree is searched.
fn key_at(table: &DeTable<'_>, offset: usize, at_end: bool) -> Option<String> {
    // A partly parsed document holds empty keys where a key was expected.
    for (k, v) in table.iter().filter(|(k, _)| !k.get_ref().is_empty()) {
        let path = k.get_ref().to_string();
        if let Some(inner) = value_key_at(v, offset, &path, at_end) {
            return Some(inner);
        }
        if holds(k.span(), offset, at_end) {
            return Some(path);
        }
    }
    None
}

/// The path within `value` (at `path`) whose text holds `offset`, `path` itself when only the
/// value's own text does.
fn value_key_at(
    value: &Spanned<DeValue<'_>>,
    offset: usize,
    path: &str,
    at_end: bool,
) -> Option<String> {
    match value.get_ref() {
        DeValue::Table(t) => {
            if let Some(inner) = key_at(t, offset, at_end) {
                return Some(format!("{path}.{inner}"));
            }
        }
        DeValue::Array(a) => {
            for (i, el) in a.iter().enumerate() {
                if let Some(inner) = value_key_at(el, offset, &format!("{path}[{i}]"), at_end) {
                    return Some(inner);
                }
            }
        }
        _ => {}
    }
    holds(value.span(), offset, at_end).then(|| path.to_owned())
}

/// True when `span` holds `offset` (an empty span holds the offset it is at), or with `at_end`
/// ends at it.
fn holds(span: Range<usize>, offset: usize, at_end: bool) -> bool {
    span.contains(&offset) || ((span.is_empty() || at_end) && span.end == offset)
}

/// A WWN from a string value; the all-zero name (FC-LS: "not present") is refused.
pub(crate) fn wwn(
    src: &Source<'_>,
    v: &Spanned<String>,
    key: &str,
) -> Result<Wwn, ConfigFileError> {
    let w: Wwn = v
        .get_ref()
        .parse()
        .map_err(|e| src.error(v.span(), key, e))?;
    if w == Wwn::ZERO {
        return Err(src.error(
            v.span(),
            key,
            "the all-zero WWN means \"no name\" and cannot name a port, node or switch",
        ));
    }
    Ok(w)
}

/// A TCP address and port (`127.0.0.1:7001`, `[::1]:7001`) from a string value.
pub(crate) fn socket_addr(
    src: &Source<'_>,
    v: &Spanned<String>,
    key: &str,
) -> Result<SocketAddr, ConfigFileError> {
    v.get_ref().parse().map_err(|_| {
        src.error(
            v.span(),
            key,
            format!(
                "not an IP address and port: {:?} (expected such as 127.0.0.1:7001)",
                v.get_ref()
            ),
        )
    })
}

/// An integer value in `range`.
pub(crate) fn in_range<T: TryFrom<i64>>(
    src: &Source<'_>,
    v: &Spanned<i64>,
    key: &str,
    range: Range<i64>,
    what: &str,
) -> Result<T, ConfigFileError> {
    let n = *v.get_ref();
    let out_of_range = || {
        src.error(
            v.span(),
            key,
            format!(
                "{what} {n} is outside {}..={}",
                range.start,
                range.end.saturating_sub(1)
            ),
        )
    };
    if !range.contains(&n) {
        return Err(out_of_range());
    }
    T::try_from(n).map_err(|_| out_of_range())
}

/// A relative path taken from the config file's folder `base`; an empty path is refused.
pub(crate) fn path(
    src: &Source<'_>,
    v: &Spanned<String>,
    key: &str,
    base: &Path,
) -> Result<PathBuf, ConfigFileError> {
    if v.get_ref().is_empty() {
        return Err(src.error(v.span(), key, "the path is empty"));
    }
    Ok(base.join(v.get_ref()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Doc {
        a: A,
        #[serde(default)]
        b: Vec<A>,
    }

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct A {
        x: u8,
        y: Option<Vec<u8>>,
    }

    fn err(text: &str) -> String {
        Source::new("t.toml", text)
            .deserialize::<Doc>()
            .unwrap_err()
            .to_string()
    }

    #[test]
    fn test_line_numbers() {
        let s = Source::new("t", "a\nb\n\nc");
        assert_eq!(s.line(0), 1);
        assert_eq!(s.line(2), 2);
        assert_eq!(s.line(5), 4);
        assert_eq!(s.line(99), 4);
    }

    #[test]
    fn test_key_paths_of_serde_errors() {
        assert_eq!(
            err("[a]\nx = 1\n\n[[b]]\nx = 2\n[[b]]\nx = 1\ny = [1, 300]\n"),
            "t.toml:8: key b[1].y[1]: invalid value: integer `300`, expected u8"
        );
        assert_eq!(
            err("[a]\nx = 1\n[[b]]\nx = 2\n[[b]]\ny = []\n"),
            "t.toml:5: key b[1].x: missing field `x`"
        );
        assert_eq!(
            err("a = { x = 1, z = 2 }\n"),
            "t.toml:1: key a.z: unknown field `z`, expected `x` or `y`"
        );
        assert_eq!(err("b = []\n"), "t.toml:1: key a: missing field `a`");
    }

    #[test]
    fn test_syntax_error_key_from_line() {
        assert_eq!(
            err("[a]\nx = 1\nx = 2\n"),
            "t.toml:3: key a.x: duplicate key"
        );
        assert_eq!(
            err("[a]\nx = 1\n[[b]]\nx = 1\n[[b]]\n  x = 1\n  x = 2\n"),
            "t.toml:7: key b[1].x: duplicate key"
        );
        assert_eq!(
            err("[[a]]\n[[a.b]]\n[[a]]\n[[a.b]]\n[[a.b]]\ny = 1\ny = 1\n"),
            "t.toml:7: key a[1].b[1].y: duplicate key"
        );
        assert_eq!(err("[a]\nx = 1\n[a]\n"), "t.toml:3: key a: duplicate key");
    }

    #[test]
    fn test_syntax_error_without_key() {
        assert_eq!(
            err("[a]\nx = 1\n= 3\n"),
            "t.toml:3: unquoted keys cannot be empty, expected letters, numbers, `-`, `_`"
        );
    }
}
