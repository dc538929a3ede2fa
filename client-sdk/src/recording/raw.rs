//! Raw records beyond venue messages: the feed events a normalizer saw besides the venue's
//! WebSocket messages (connection opened, REST book snapshot, silence, connection lost), and
//! holes in the raw data, stored so that a recording's raw records can be run through a
//! normalizer again exactly as the live feed ran them (see the format's "Raw records and feed
//! events" section in the [module documentation](super)).

use super::RecordingWriter;
use super::error::RecordingError;
use super::format::RawRecord;

/// Bit of a raw record's `venue` field marking a feed event rather than a venue message.
pub const RAW_EVENT_FLAG: u16 = 0x8000;

/// What one raw record holds, as a normalizer is to be given it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RawEvent<'a> {
    /// A message from the venue (WebSocket text or binary), exactly as received.
    Message(&'a [u8]),
    /// The connection was opened and subscribed (`Normalizer::on_connect`).
    Connect {
        /// The symbols the feed was configured for, comma-separated as the venue spells
        /// them (the normalizer to re-run is built for them); empty if none.
        symbols: &'a str,
    },
    /// The body of a REST book snapshot for `symbol` (`Normalizer::on_snapshot`).
    Snapshot {
        /// The venue's symbol the snapshot was requested for.
        symbol: &'a str,
        /// The response body, exactly as received.
        body: &'a [u8],
    },
    /// No message arrived for a while (`Normalizer::on_stale`).
    Stale {
        /// How long, in words.
        detail: &'a str,
    },
    /// The connection ended (`Normalizer::on_disconnect`).
    Disconnect {
        /// Why.
        reason: &'a str,
    },
    /// `lost` raw records are missing here: the recorder could not keep up with the feed.
    /// The frames were recorded in full; only re-normalizing has a hole at this point.
    Gap {
        /// How many raw records were lost.
        lost: u64,
    },
}

impl<'a> RawEvent<'a> {
    /// The record's `venue` field for this event of `venue` (a venue message keeps the bare
    /// venue id; a feed event sets [`RAW_EVENT_FLAG`]).
    pub fn venue_field(&self, venue: u16) -> u16 {
        match self {
            RawEvent::Message(_) => venue & !RAW_EVENT_FLAG,
            _ => venue | RAW_EVENT_FLAG,
        }
    }

    /// Appends the record's message bytes for this event to `out`: a venue message as is; a
    /// feed event as one text line (`connect SYMBOLS`, `snapshot SYMBOL`, `stale DETAIL`,
    /// `disconnect REASON`, `gap N`), then for a snapshot `\n` and the body.
    pub fn write_bytes(&self, out: &mut Vec<u8>) {
        let line = |out: &mut Vec<u8>, word: &str, arg: &str| {
            out.extend_from_slice(word.as_bytes());
            if !arg.is_empty() {
                out.push(b' ');
                // A line: newlines in the argument would split it.
                out.extend(arg.bytes().map(|b| if b == b'\n' { b' ' } else { b }));
            }
        };
        match self {
            RawEvent::Message(bytes) => out.extend_from_slice(bytes),
            RawEvent::Connect { symbols } => line(out, "connect", symbols),
            RawEvent::Snapshot { symbol, body } => {
                line(out, "snapshot", symbol);
                out.push(b'\n');
                out.extend_from_slice(body);
            }
            RawEvent::Stale { detail } => line(out, "stale", detail),
            RawEvent::Disconnect { reason } => line(out, "disconnect", reason),
            RawEvent::Gap { lost } => line(out, "gap", &lost.to_string()),
        }
    }

    /// Reads a raw record: its venue id (without [`RAW_EVENT_FLAG`]) and what it holds. An
    /// event record that does not parse is an error saying why.
    pub fn decode(record: &RawRecord<'a>) -> Result<(u16, RawEvent<'a>), String> {
        let venue = record.venue & !RAW_EVENT_FLAG;
        if record.venue & RAW_EVENT_FLAG == 0 {
            return Ok((venue, RawEvent::Message(record.bytes)));
        }
        let bytes = record.bytes;
        let (first, rest) = match bytes.iter().position(|&b| b == b'\n') {
            Some(n) => (&bytes[..n], Some(&bytes[n + 1..])),
            None => (bytes, None),
        };
        let first =
            std::str::from_utf8(first).map_err(|_| "feed event line is not UTF-8".to_string())?;
        let (word, arg) = first.split_once(' ').unwrap_or((first, ""));
        let event = match (word, rest) {
            ("connect", None) => RawEvent::Connect { symbols: arg },
            ("snapshot", Some(body)) if !arg.is_empty() => RawEvent::Snapshot { symbol: arg, body },
            ("stale", None) => RawEvent::Stale { detail: arg },
            ("disconnect", None) => RawEvent::Disconnect { reason: arg },
            ("gap", None) => RawEvent::Gap {
                lost: arg
                    .parse()
                    .map_err(|_| format!("feed event `gap {arg}`: not a count"))?,
            },
            _ => {
                let shown: String = first.chars().take(40).collect();
                return Err(format!("unknown feed event `{shown}`"));
            }
        };
        Ok((venue, event))
    }
}

impl RecordingWriter {
    /// Records one raw record for `event` of `venue` at `ts_recv` (if
    /// [`WriterOptions::keep_raw`](super::WriterOptions::keep_raw); otherwise does nothing).
    /// `scratch` is reused for the record's bytes.
    pub fn append_raw_event(
        &mut self,
        venue: u16,
        ts_recv: u64,
        event: &RawEvent<'_>,
        scratch: &mut Vec<u8>,
    ) -> Result<(), RecordingError> {
        let field = event.venue_field(venue);
        if let RawEvent::Message(bytes) = event {
            return self.append_raw(field, ts_recv, bytes);
        }
        scratch.clear();
        event.write_bytes(scratch);
        self.append_raw(field, ts_recv, scratch)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_event_reads_back_as_written() {
        let events = [
            RawEvent::Message(b"{\"e\":\"trade\"}"),
            RawEvent::Message(b""),
            RawEvent::Connect { symbols: "" },
            RawEvent::Connect {
                symbols: "BTCUSDT,ETHUSDT",
            },
            RawEvent::Snapshot {
                symbol: "BTCUSDT",
                body: b"{\"lastUpdateId\":1}\n",
            },
            RawEvent::Stale {
                detail: "no message for 10.0s",
            },
            RawEvent::Disconnect { reason: "" },
            RawEvent::Disconnect {
                reason: "venue closed the connection: 1000 bye",
            },
            RawEvent::Gap { lost: 17 },
        ];
        for e in events {
            let mut bytes = Vec::new();
            e.write_bytes(&mut bytes);
            let record = RawRecord {
                ts_recv: 5,
                venue: e.venue_field(4),
                bytes: &bytes,
            };
            assert_eq!(RawEvent::decode(&record), Ok((4, e)), "{e:?}");
        }
    }

    #[test]
    fn a_newline_in_an_argument_does_not_split_the_event() {
        let mut bytes = Vec::new();
        RawEvent::Disconnect { reason: "a\nb" }.write_bytes(&mut bytes);
        let record = RawRecord {
            ts_recv: 0,
            venue: 1 | RAW_EVENT_FLAG,
            bytes: &bytes,
        };
        assert_eq!(
            RawEvent::decode(&record),
            Ok((1, RawEvent::Disconnect { reason: "a b" }))
        );
    }

    #[test]
    fn unknown_or_malformed_events_are_errors() {
        for bad in [
            &b"reboot"[..],
            b"gap x",
            b"snapshot\n{}",
            b"connect\nextra",
            b"\xff",
        ] {
            let record = RawRecord {
                ts_recv: 0,
                venue: 1 | RAW_EVENT_FLAG,
                bytes: bad,
            };
            assert!(RawEvent::decode(&record).is_err(), "{bad:?}");
        }
    }
}
