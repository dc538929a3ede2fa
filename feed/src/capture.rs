//! Reading captured raw venue frames from files (sans-IO over any `BufRead`).
//!
//! Line formats understood, detected per line:
//!
//! - bare frame: `{...}` (or `[...]`): a frame with no receive time;
//! - hftbacktest: `<receive time ns> <frame>`;
//! - cryptofeed: `<secs.frac>: <frame>` (received), `<url> <- <secs>: <frame>` (sent),
//!   `<url> -> <secs>: <body>` (HTTP response), `<url> <-> <secs>` (connection opened).
//!
//! Files may be gzip-compressed (detected by magic bytes, not by name).

use std::fs::File;
use std::io::{self, BufRead, BufReader};
use std::path::Path;

use thiserror::Error;

/// What a captured line holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RecordKind {
    /// A frame received from the venue (WebSocket).
    Received,
    /// A frame the capturing client sent to `url` (subscribe requests...).
    Sent {
        /// Where it was sent.
        url: String,
    },
    /// An HTTP response body from `url` (a REST snapshot).
    Http {
        /// The request URL.
        url: String,
    },
    /// A WebSocket connection to `url` was opened.
    Connect {
        /// The WebSocket URL.
        url: String,
    },
}

/// Which line format a line is in (several may appear in one file: an hftbacktest capture
/// has bare REST snapshot lines among its `<ns> <frame>` lines).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LineForm {
    /// `{...}` or `[...]`: a frame with no receive time.
    Bare,
    /// hftbacktest: `<receive time ns> <frame>`.
    Hftbacktest,
    /// cryptofeed: `<secs.frac>: <frame>` or `<url> <dir> <secs>[: <payload>]`.
    Cryptofeed,
}

impl LineForm {
    /// How the form looks, for messages.
    pub fn describe(self) -> &'static str {
        match self {
            LineForm::Bare => "a bare JSON frame without a receive time",
            LineForm::Hftbacktest => "an hftbacktest line `<ns> <frame>`",
            LineForm::Cryptofeed => {
                "a cryptofeed line `<secs>: <frame>` or `<url> <dir> <secs>: ...`"
            }
        }
    }
}

/// One captured line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// 1-based line number in the file.
    pub line: u64,
    /// The line's format.
    pub form: LineForm,
    /// Receive time in ns since the Unix epoch, if the capture has one.
    pub ts_ns: Option<u64>,
    /// What the line holds.
    pub kind: RecordKind,
    /// The frame or body bytes (empty for `Connect`).
    pub payload: Vec<u8>,
}

impl Record {
    /// The `symbol=` query parameter of an HTTP record's URL, if any (Binance REST snapshots).
    pub fn url_symbol(&self) -> Option<&str> {
        let RecordKind::Http { url } = &self.kind else {
            return None;
        };
        let query = url.split_once('?')?.1;
        query
            .split('&')
            .find_map(|kv| kv.strip_prefix("symbol="))
            .map(|s| s.split('#').next().unwrap_or(s))
    }
}

/// Why a capture could not be read.
#[derive(Debug, Error)]
pub enum CaptureError {
    /// The file could not be opened or read.
    #[error("cannot read {path}")]
    Io {
        /// The file.
        path: String,
        /// The I/O error.
        source: io::Error,
    },
    /// A line is in none of the known formats.
    #[error(
        "{path}:{line}: not a capture line (expected `<ns> <frame>`, `<secs>: <frame>` or a bare JSON frame): {snippet}"
    )]
    Format {
        /// The file.
        path: String,
        /// 1-based line number.
        line: u64,
        /// The start of the offending line.
        snippet: String,
    },
}

/// Reads records from a capture, one line at a time, reusing its line buffer.
pub struct CaptureReader {
    path: String,
    input: Box<dyn BufRead + Send>,
    line_no: u64,
    buf: Vec<u8>,
}

impl CaptureReader {
    /// Opens a capture file (plain or gzip).
    pub fn open(path: impl AsRef<Path>) -> Result<CaptureReader, CaptureError> {
        let path_str = path.as_ref().display().to_string();
        let io_err = |source| CaptureError::Io {
            path: path_str.clone(),
            source,
        };
        let file = File::open(path.as_ref()).map_err(io_err)?;
        Self::from_reader(path_str.clone(), BufReader::new(file)).map_err(io_err)
    }

    /// Reads a capture from memory (plain or gzip).
    pub fn from_bytes(name: &str, bytes: &'static [u8]) -> CaptureReader {
        // Reading from a slice cannot fail.
        Self::from_reader(name.to_string(), io::Cursor::new(bytes)).unwrap_or_else(|_| {
            CaptureReader {
                path: name.to_string(),
                input: Box::new(io::Cursor::new(&[][..])),
                line_no: 0,
                buf: Vec::new(),
            }
        })
    }

    /// Reads a capture from any buffered reader (plain or gzip).
    pub fn from_reader<R: BufRead + Send + 'static>(
        name: String,
        mut reader: R,
    ) -> io::Result<CaptureReader> {
        let gz = {
            let head = reader.fill_buf()?;
            head.len() >= 2 && head[0] == 0x1f && head[1] == 0x8b
        };
        let input: Box<dyn BufRead + Send> = if gz {
            Box::new(BufReader::with_capacity(
                1 << 16,
                flate2::bufread::MultiGzDecoder::new(reader),
            ))
        } else {
            Box::new(reader)
        };
        Ok(CaptureReader {
            path: name,
            input,
            line_no: 0,
            buf: Vec::with_capacity(1 << 16),
        })
    }

    /// The next record, `None` at the end. Blank lines are skipped.
    pub fn next_record(&mut self) -> Option<Result<Record, CaptureError>> {
        loop {
            self.buf.clear();
            match self.input.read_until(b'\n', &mut self.buf) {
                Ok(0) => return None,
                Ok(_) => {}
                Err(source) => {
                    return Some(Err(CaptureError::Io {
                        path: self.path.clone(),
                        source,
                    }));
                }
            }
            self.line_no += 1;
            while matches!(self.buf.last(), Some(b'\n' | b'\r')) {
                self.buf.pop();
            }
            if self.buf.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            return Some(parse_line(&self.buf, self.line_no).ok_or_else(|| {
                let end = self.buf.len().min(80);
                CaptureError::Format {
                    path: self.path.clone(),
                    line: self.line_no,
                    snippet: String::from_utf8_lossy(&self.buf[..end]).into_owned(),
                }
            }));
        }
    }

    /// Reads every record (convenience for tests and tools).
    pub fn read_all(mut self) -> Result<Vec<Record>, CaptureError> {
        let mut out = Vec::new();
        while let Some(r) = self.next_record() {
            out.push(r?);
        }
        Ok(out)
    }
}

impl Iterator for CaptureReader {
    type Item = Result<Record, CaptureError>;
    fn next(&mut self) -> Option<Self::Item> {
        self.next_record()
    }
}

/// Parses one line (without its newline). `None` if it is in no known format.
pub fn parse_line(line: &[u8], line_no: u64) -> Option<Record> {
    let record = |form, ts_ns, kind, payload: &[u8]| Record {
        line: line_no,
        form,
        ts_ns,
        kind,
        payload: payload.to_vec(),
    };
    let first = *line.first()?;
    if first == b'{' || first == b'[' {
        return Some(record(LineForm::Bare, None, RecordKind::Received, line));
    }
    if first.is_ascii_digit() {
        // `<ns> <frame>` or `<secs.frac>: <frame>`.
        let end = line.iter().position(|&c| c == b' ' || c == b':')?;
        let (num, rest) = line.split_at(end);
        if rest.first() == Some(&b':') {
            let ts = secs_to_ns(num)?;
            let payload = rest[1..].strip_prefix(b" ").unwrap_or(&rest[1..]);
            return Some(record(
                LineForm::Cryptofeed,
                Some(ts),
                RecordKind::Received,
                payload,
            ));
        }
        if !num.iter().all(u8::is_ascii_digit) {
            return None;
        }
        let ts = std::str::from_utf8(num).ok()?.parse::<u64>().ok()?;
        return Some(record(
            LineForm::Hftbacktest,
            Some(ts),
            RecordKind::Received,
            &rest[1..],
        ));
    }
    // `<url> <dir> <secs>[: <payload>]`
    let text = std::str::from_utf8(line).ok()?;
    let (url, rest) = text.split_once(' ')?;
    let (dir, rest) = rest.split_once(' ')?;
    let (ts_text, payload) = match rest.split_once(": ") {
        Some((t, p)) => (t, p),
        None => (rest.trim_end_matches(':'), ""),
    };
    let ts = secs_to_ns(ts_text.as_bytes())?;
    let url = url.to_string();
    let kind = match dir {
        "<-" => RecordKind::Sent { url },
        "->" => RecordKind::Http { url },
        "<->" => RecordKind::Connect { url },
        _ => return None,
    };
    Some(record(
        LineForm::Cryptofeed,
        Some(ts),
        kind,
        payload.as_bytes(),
    ))
}

/// `"1633998512.0633569"` -> ns since the epoch, exactly (no float rounding).
fn secs_to_ns(text: &[u8]) -> Option<u64> {
    let p = tickwire_sdk::wire::parse_decimal(text).ok()?;
    u64::try_from(p.value).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_each_line_form() {
        let r = parse_line(br#"1723161253937085768 {"stream":"x"}"#, 1).unwrap();
        assert_eq!(r.ts_ns, Some(1_723_161_253_937_085_768));
        assert_eq!(r.payload, br#"{"stream":"x"}"#);
        assert_eq!(r.kind, RecordKind::Received);
        assert_eq!(r.form, LineForm::Hftbacktest);

        let r = parse_line(br#"1633998512.0633569: {"a":1}"#, 2).unwrap();
        assert_eq!(r.ts_ns, Some(1_633_998_512_063_356_900));
        assert_eq!(r.payload, br#"{"a":1}"#);
        assert_eq!(r.form, LineForm::Cryptofeed);

        let r = parse_line(br#"{"lastUpdateId":1}"#, 3).unwrap();
        assert_eq!(r.ts_ns, None);
        assert_eq!(r.form, LineForm::Bare);

        let r = parse_line(
            br#"https://api.binance.com/api/v3/depth?symbol=NKNUSDT&limit=1000 -> 1633998512.320639: {"lastUpdateId":1}"#,
            4,
        )
        .unwrap();
        assert!(matches!(r.kind, RecordKind::Http { .. }));
        assert_eq!(r.url_symbol(), Some("NKNUSDT"));
        assert_eq!(r.payload, br#"{"lastUpdateId":1}"#);

        let r = parse_line(b"wss://ws.kraken.com <-> 1618678132.3858151", 5).unwrap();
        assert!(matches!(r.kind, RecordKind::Connect { .. }));
        assert!(r.payload.is_empty());
        assert_eq!(r.form, LineForm::Cryptofeed);

        let r = parse_line(
            br#"wss://ws.kraken.com <- 1618678132.8253062: {"event":"subscribe"}"#,
            6,
        )
        .unwrap();
        assert!(matches!(r.kind, RecordKind::Sent { .. }));
    }

    #[test]
    fn rejects_garbage() {
        for bad in [
            &b"hello world"[..],
            b"12ab {}",
            b"x <=> 1.0",
            b"x -> notatime: {}",
        ] {
            assert!(
                parse_line(bad, 1).is_none(),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
        let mut r =
            CaptureReader::from_reader("t".into(), io::Cursor::new(b"{}\n\nbad line\n".to_vec()))
                .unwrap();
        assert!(r.next_record().unwrap().is_ok());
        let err = r.next_record().unwrap().unwrap_err();
        assert!(err.to_string().contains("t:3"), "{err}");
        assert!(r.next_record().is_none());
    }

    #[test]
    fn reads_gzip_and_plain_captures() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../replay-data/captures");
        let gz = CaptureReader::open(format!(
            "{dir}/binance_spot/depth100ms_bookTicker_trade_restSnapshot/btcusdt_20240808.gz"
        ))
        .unwrap();
        let records = gz.read_all().unwrap();
        assert_eq!(records.len(), 41_249);
        let cf = CaptureReader::open(format!(
            "{dir}/binance_spot/depth100ms_bookTicker_kline1m_aggTrade/BINANCE.ws.1.0"
        ))
        .unwrap()
        .read_all()
        .unwrap();
        assert_eq!(cf.len(), 266);
        assert!(matches!(cf[0].kind, RecordKind::Connect { .. }));
    }
}
