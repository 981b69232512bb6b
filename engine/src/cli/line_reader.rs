//! Kafka's `LineMessageReader` for `weir produce`: how a line of stdin becomes a record
//! (headers, key, value), with the same properties, defaults, error messages and
//! separator checks, and the thread that reads stdin.
//!
//! ```text
//!  parse.headers=true, parse.key=true:  h1:v1,h2:v2<TAB>key<TAB>value
//!  parse.key=true:                      key<TAB>value
//!  default:                             value
//! ```
//!
//! Fields are split at the first separator, so values may contain it; a field equal
//! to `null.marker` is null. Lines are bytes: input need not be UTF-8.

use std::io::{BufRead, IsTerminal, Write};
use std::sync::mpsc::{Receiver, SyncSender};

use weir_storage::batch::{ProducerRecord, RecordHeader};

use super::console::{self, Properties};

/// Lines read ahead of the producer: bounds memory while the producer waits on a broker.
const LINES_QUEUED_MAX: usize = 1024;

/// Reader property keys `LineReader` understands.
pub const READER_KEYS: &[&str] = &[
    "parse.key",
    "key.separator",
    "parse.headers",
    "headers.delimiter",
    "headers.separator",
    "headers.key.separator",
    "ignore.error",
    "null.marker",
];

/// Kafka's `LineMessageReader`: how a line becomes headers, key and value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LineReader {
    pub parse_key: bool,
    pub key_separator: Vec<u8>,
    pub parse_headers: bool,
    pub headers_delimiter: Vec<u8>,
    pub headers_separator: Vec<u8>,
    pub headers_key_separator: Vec<u8>,
    pub ignore_error: bool,
    pub null_marker: Option<Vec<u8>>,
}

impl LineReader {
    /// Reads the reader properties, refusing the separator clashes Kafka refuses.
    pub fn from_properties(properties: &Properties) -> Result<LineReader, String> {
        let bytes = |key: &str, default: &str| {
            properties
                .get(key)
                .map_or_else(|| default.as_bytes().to_vec(), |v| v.as_bytes().to_vec())
        };
        let flag = |key: &str| properties.get(key).is_some_and(|v| console::is_true(v));
        let reader = LineReader {
            parse_key: flag("parse.key"),
            key_separator: bytes("key.separator", "\t"),
            parse_headers: flag("parse.headers"),
            headers_delimiter: bytes("headers.delimiter", "\t"),
            headers_separator: bytes("headers.separator", ","),
            headers_key_separator: bytes("headers.key.separator", ":"),
            ignore_error: flag("ignore.error"),
            null_marker: properties.get("null.marker").map(|v| v.as_bytes().to_vec()),
        };
        let pairs = [
            (
                "headers.delimiter",
                &reader.headers_delimiter,
                "headers.separator",
                &reader.headers_separator,
            ),
            (
                "headers.delimiter",
                &reader.headers_delimiter,
                "headers.key.separator",
                &reader.headers_key_separator,
            ),
            (
                "headers.separator",
                &reader.headers_separator,
                "headers.key.separator",
                &reader.headers_key_separator,
            ),
        ];
        for (a, a_value, b, b_value) in pairs {
            if a_value == b_value {
                return Err(format!("{a} and {b} may not be equal"));
            }
        }
        if let Some(marker) = &reader.null_marker {
            for (name, value) in [
                ("key.separator", &reader.key_separator),
                ("headers.separator", &reader.headers_separator),
                ("headers.delimiter", &reader.headers_delimiter),
                ("headers.key.separator", &reader.headers_key_separator),
            ] {
                if value == marker {
                    return Err(format!("null.marker and {name} may not be equal"));
                }
            }
        }
        for (name, value) in [
            ("key.separator", &reader.key_separator),
            ("headers.delimiter", &reader.headers_delimiter),
            ("headers.separator", &reader.headers_separator),
            ("headers.key.separator", &reader.headers_key_separator),
        ] {
            if value.is_empty() {
                return Err(format!("{name} may not be empty"));
            }
        }
        Ok(reader)
    }

    /// Splits line number `line_number` (from 1) into a record; the timestamp is left 0.
    pub fn parse(&self, line: &[u8], line_number: u64) -> Result<ProducerRecord, String> {
        let shown = || String::from_utf8_lossy(line).into_owned();
        let field = |enabled: bool, start: usize, separator: &[u8], name: &str| {
            if !enabled {
                return Ok(None);
            }
            match find(&line[start..], separator) {
                Some(index) => Ok(Some(&line[start..start + index])),
                None if self.ignore_error => Ok(None),
                None => Err(format!(
                    "No {name} found on line number {line_number}: '{}'",
                    shown()
                )),
            }
        };
        let headers = field(
            self.parse_headers,
            0,
            &self.headers_delimiter,
            "headers delimiter",
        )?;
        let header_offset = headers.map_or(0, |h| h.len() + self.headers_delimiter.len());
        let key = field(
            self.parse_key,
            header_offset,
            &self.key_separator,
            "key separator",
        )?;
        let key_offset = key.map_or(0, |k| k.len() + self.key_separator.len());
        let value = &line[header_offset + key_offset..];
        let is_null = |bytes: &[u8]| self.null_marker.as_deref() == Some(bytes);
        let mut record = ProducerRecord {
            timestamp_ms: 0,
            key: key.filter(|k| !is_null(k)).map(<[u8]>::to_vec),
            value: (!is_null(value)).then(|| value.to_vec()),
            headers: Vec::new(),
        };
        if let Some(headers) = headers.filter(|h| !is_null(h)) {
            for pair in split_like_java(headers, &self.headers_separator) {
                let Some(index) = find(pair, &self.headers_key_separator) else {
                    if self.ignore_error {
                        record.headers.push(RecordHeader {
                            key: pair.to_vec(),
                            value: None,
                        });
                        continue;
                    }
                    return Err(format!(
                        "No header key separator found in pair '{}' on line number {line_number}",
                        String::from_utf8_lossy(pair)
                    ));
                };
                let header_key = &pair[..index];
                if is_null(header_key) {
                    return Err(format!(
                        "Header keys should not be equal to the null marker '{}' as they can't be null",
                        String::from_utf8_lossy(header_key)
                    ));
                }
                let header_value = &pair[index + self.headers_key_separator.len()..];
                record.headers.push(RecordHeader {
                    key: header_key.to_vec(),
                    value: (!is_null(header_value)).then(|| header_value.to_vec()),
                });
            }
        }
        Ok(record)
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack
        .windows(needle.len())
        .position(|window| window == needle)
}

/// Java's `String.split` with a literal separator: trailing empty parts are dropped,
/// and a string without the separator is one part (even when empty).
fn split_like_java<'a>(text: &'a [u8], separator: &[u8]) -> Vec<&'a [u8]> {
    let mut parts = Vec::new();
    let mut rest = text;
    while let Some(index) = find(rest, separator) {
        parts.push(&rest[..index]);
        rest = &rest[index + separator.len()..];
    }
    if parts.is_empty() {
        return vec![text];
    }
    parts.push(rest);
    while parts.last().is_some_and(|part| part.is_empty()) {
        parts.pop();
    }
    parts
}

/// What the stdin thread hands over.
pub type Line = std::io::Result<Vec<u8>>;

/// Reads stdin on its own thread so the main loop can keep linger deadlines while no
/// line arrives. Prints Kafka's `>` prompt when both ends are a terminal.
pub fn spawn_stdin_reader() -> Receiver<Line> {
    let (sender, receiver) = std::sync::mpsc::sync_channel(LINES_QUEUED_MAX);
    let prompt = std::io::stdin().is_terminal() && std::io::stdout().is_terminal();
    std::thread::Builder::new()
        .name("stdin".to_string())
        .spawn(move || read_lines(sender, prompt))
        .expect("spawning the stdin reader thread");
    receiver
}

fn read_lines(sender: SyncSender<Line>, prompt: bool) {
    let stdin = std::io::stdin();
    let mut input = stdin.lock();
    loop {
        if prompt {
            print!(">");
            let _ = std::io::stdout().flush();
        }
        let mut line = Vec::new();
        match input.read_until(b'\n', &mut line) {
            Ok(0) => return,
            Ok(_) => {
                if line.last() == Some(&b'\n') {
                    line.pop();
                    if line.last() == Some(&b'\r') {
                        line.pop();
                    }
                }
                if sender.send(Ok(line)).is_err() {
                    return;
                }
            }
            Err(error) if error.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(error) => {
                let _ = sender.send(Err(error));
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::test_support::properties as props;

    fn reader(pairs: &[(&str, &str)]) -> LineReader {
        LineReader::from_properties(&props(pairs)).expect("valid reader properties")
    }

    #[test]
    fn plain_lines_are_values_without_key() {
        let record = reader(&[]).parse(b"hello\tworld", 1).expect("parses");
        assert_eq!(record.key, None);
        assert_eq!(record.value.as_deref(), Some(&b"hello\tworld"[..]));
        assert!(record.headers.is_empty());
    }

    #[test]
    fn keys_split_at_the_first_separator() {
        let reader = reader(&[("parse.key", "true"), ("key.separator", ":")]);
        let record = reader.parse(b"user-1:a:b", 1).expect("parses");
        assert_eq!(record.key.as_deref(), Some(&b"user-1"[..]));
        assert_eq!(record.value.as_deref(), Some(&b"a:b"[..]));
        let record = reader.parse(b":only value", 1).expect("parses");
        assert_eq!(record.key.as_deref(), Some(&b""[..]));
        let error = reader
            .parse(b"no separator", 7)
            .expect_err("missing separator");
        assert_eq!(
            error,
            "No key separator found on line number 7: 'no separator'"
        );
    }

    #[test]
    fn ignore_error_makes_the_whole_line_the_value() {
        let reader = reader(&[("parse.key", "true"), ("ignore.error", "true")]);
        let record = reader.parse(b"no tab here", 1).expect("parses");
        assert_eq!(record.key, None);
        assert_eq!(record.value.as_deref(), Some(&b"no tab here"[..]));
    }

    #[test]
    fn headers_key_and_value_parse_like_line_message_reader() {
        let reader = reader(&[
            ("parse.headers", "true"),
            ("parse.key", "true"),
            ("null.marker", "<null>"),
        ]);
        let record = reader
            .parse(b"h1:v1,h2:<null>,h3:a:b\tkey\tvalue", 1)
            .expect("parses");
        assert_eq!(record.key.as_deref(), Some(&b"key"[..]));
        assert_eq!(record.value.as_deref(), Some(&b"value"[..]));
        assert_eq!(
            record.headers,
            vec![
                RecordHeader {
                    key: b"h1".to_vec(),
                    value: Some(b"v1".to_vec())
                },
                RecordHeader {
                    key: b"h2".to_vec(),
                    value: None
                },
                RecordHeader {
                    key: b"h3".to_vec(),
                    value: Some(b"a:b".to_vec())
                },
            ]
        );
        let record = reader.parse(b"<null>\t<null>\t<null>", 1).expect("parses");
        assert_eq!((record.key, record.value), (None, None));
        assert!(record.headers.is_empty());
        let error = reader.parse(b"nokeysep\tk\tv", 3).expect_err("bad header");
        assert_eq!(
            error,
            "No header key separator found in pair 'nokeysep' on line number 3"
        );
        let error = reader
            .parse(b"<null>:x\tk\tv", 3)
            .expect_err("null header key");
        assert!(error.contains("null marker"), "{error}");
    }

    #[test]
    fn header_lists_split_like_java_string_split() {
        assert_eq!(split_like_java(b"a,b,,", b","), vec![&b"a"[..], b"b"]);
        assert_eq!(split_like_java(b"", b","), vec![&b""[..]]);
        assert!(split_like_java(b",,", b",").is_empty());
        assert_eq!(split_like_java(b",a", b","), vec![&b""[..], b"a"]);
    }

    #[test]
    fn clashing_separators_are_refused() {
        let clash = props(&[("headers.delimiter", ","), ("headers.separator", ",")]);
        assert!(LineReader::from_properties(&clash).is_err());
        let clash = props(&[("null.marker", "\t")]);
        let error = LineReader::from_properties(&clash).expect_err("clash");
        assert_eq!(error, "null.marker and key.separator may not be equal");
    }
}
