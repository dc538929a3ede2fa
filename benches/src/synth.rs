//! Synthetic market data for the fan-out benchmarks.
//!
//! [`Synth`] makes the frames a feed driver would push (round robin over its instruments,
//! cycling trade, quote, book delta, with prices that move), [`Producer`] turns them into the
//! bytes the sequencer publishes: per-stream `seq`, `ts_publish`, one rkyv encode. Every data
//! frame encodes to the same size (rkyv lays out an enum at the size of its largest variant),
//! the size of the real Binance trade, quote and book delta frames.

use tickwire_engine::sequencer::StreamSeqs;
use tickwire_feed::clock::now_ns;
use tickwire_sdk::wire::{
    Body, BookDelta, BookSide, Encoder, Frame, InstrumentInfo, Quote, Side, Trade, TradeId, Venue,
    flags,
};

/// 1.0 in the wire's fixed point (1e-9 units).
const ONE: i64 = 1_000_000_000;

/// A synthetic venue: `instruments` symbols on Binance (`SYN00USDT`, `SYN01USDT`...).
#[derive(Debug, Clone)]
pub struct Synth {
    instruments: Vec<InstrumentInfo>,
    n: u64,
}

impl Synth {
    /// A source of `instruments` symbols (at least one).
    pub fn new(instruments: usize) -> Synth {
        Synth {
            instruments: (0..instruments.max(1))
                .map(|i| InstrumentInfo::new(Venue::Binance, &format!("SYN{i:02}USDT"), 2, 8))
                .collect(),
            n: 0,
        }
    }

    /// The instruments.
    pub fn instruments(&self) -> &[InstrumentInfo] {
        &self.instruments
    }

    /// `binance:SYN00USDT`... as clients subscribe.
    pub fn qualified(&self) -> Vec<String> {
        self.instruments.iter().map(|i| i.qualified()).collect()
    }

    /// The Definition frame of every instrument (a feed sends these first).
    pub fn definitions(&self) -> Vec<Frame> {
        let now = now_ns();
        self.instruments
            .iter()
            .map(|i| Frame::new(i.venue, i.id, 0, now, Body::Definition(i.definition())))
            .collect()
    }

    /// The next data frame, received at `ts_recv` (ns since the epoch).
    #[inline]
    pub fn next_frame(&mut self, ts_recv: u64) -> Frame {
        let n = self.n;
        self.n += 1;
        let k = self.instruments.len() as u64;
        let info = &self.instruments[(n % k) as usize];
        let step = (n / k) as i64;
        // A price that wanders in a band, in cents, so every frame differs.
        let px = (60_000 * 100 + (step * 7919) % 5_000) * ONE / 100;
        let qty = (1 + step % 997) * ONE / 1_000;
        let body = match (n / k) % 3 {
            0 => Body::Trade(Trade {
                price: px,
                qty,
                side: if step % 2 == 0 { Side::Buy } else { Side::Sell },
                trade_id: TradeId::Num(3_735_683_259 + n),
            }),
            1 => Body::Quote(Quote {
                bid_px: px,
                bid_qty: qty,
                ask_px: px + ONE / 100,
                ask_qty: qty + ONE / 1_000,
            }),
            _ => Body::BookDelta(BookDelta {
                side: if step % 2 == 0 {
                    BookSide::Bid
                } else {
                    BookSide::Ask
                },
                price: px,
                qty,
            }),
        };
        let ts_exchange = ts_recv.saturating_sub(1_000_000);
        Frame::new(Venue::Binance, info.id, ts_exchange, ts_recv, body).with_flags(flags::LAST)
    }
}

/// Does the sequencer's work for the baselines that bypass it: per-stream `seq`,
/// `ts_publish`, one rkyv encode into a reused encoder.
pub struct Producer {
    synth: Synth,
    seqs: StreamSeqs,
    encoder: Encoder,
    frame: Frame,
}

impl Producer {
    /// A producer over `synth`.
    pub fn new(synth: Synth) -> Producer {
        Producer {
            synth,
            seqs: StreamSeqs::default(),
            encoder: Encoder::new(),
            frame: Frame::new(Venue::Binance, 0, 0, 0, Body::Heartbeat),
        }
    }

    /// The next frame, sequenced, stamped and encoded: the frame and its bytes.
    #[inline]
    pub fn produce(&mut self) -> (&Frame, &[u8]) {
        let now = now_ns();
        self.frame = self.synth.next_frame(now);
        self.seqs.assign(&mut self.frame);
        self.frame.ts_publish = now_ns();
        (&self.frame, self.encoder.encode(&self.frame))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tickwire_sdk::wire::access;

    #[test]
    fn data_frames_are_one_size_and_valid() {
        let mut p = Producer::new(Synth::new(10));
        let mut kinds = [0usize; 3];
        let size = p.produce().1.len();
        for _ in 1..3_001 {
            let (frame, bytes) = p.produce();
            let kind = frame.kind();
            assert_eq!(bytes.len(), size, "{kind:?}");
            let f = access(bytes).expect("valid frame");
            assert_eq!(f.instrument.to_native(), frame.instrument);
            assert_eq!(f.kind(), kind);
            assert_eq!(f.seq.to_native(), frame.seq);
            assert!(f.seq.to_native() >= 1 && f.ts_publish.to_native() > 0);
            kinds[kind as usize] += 1;
        }
        assert_eq!(kinds.iter().sum::<usize>(), 3_000);
        assert!(kinds.iter().all(|&k| k >= 999), "{kinds:?}");
    }
}
