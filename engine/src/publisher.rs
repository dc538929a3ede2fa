//! The publishing step shared by every source of the broadcast ring: keep the last-value
//! cache and the registry up to date, then put the encoded frame into the ring.
//!
//! Two ways in:
//! - [`Publisher::publish`]: a fresh frame from a feed: it gets the next `seq` of its stream
//!   and `ts_publish`, and is encoded once here (the sequencer);
//! - [`Publisher::publish_encoded`]: a frame already sequenced and encoded elsewhere (a
//!   recording being replayed, an ingest node across NATS): published byte for byte.
//!
//! A `Publisher` owns the ring's only writer, so exactly one thread publishes.

use std::collections::HashMap;
use std::sync::Arc;

use tickwire_feed::clock::now_ns;
use tickwire_sdk::wire::{Body, Encoder, Frame, InstrumentInfo, Venue};

use crate::lvc::{self, Lvc, Slot};
use crate::registry::Registry;
use crate::ring::{Entry, Ring, RingWriter};
use crate::sequencer::StreamSeqs;

/// The single writer of a broadcast ring, with the cache and registry it keeps.
pub struct Publisher {
    writer: RingWriter,
    seqs: StreamSeqs,
    /// Per instrument: its definition (once seen) and its cache slot.
    instruments: HashMap<u32, (Option<Arc<InstrumentInfo>>, Slot)>,
    registry: Arc<Registry>,
    lvc: Arc<Lvc>,
    encoder: Encoder,
}

impl Publisher {
    /// A publisher over a new ring of `capacity` entries (rounded up to a power of two).
    pub fn new(capacity: usize, registry: Arc<Registry>) -> Publisher {
        let (writer, _) = crate::ring::ring(capacity);
        Publisher {
            writer,
            seqs: StreamSeqs::default(),
            instruments: HashMap::new(),
            registry,
            lvc: Arc::new(Lvc::new()),
            encoder: Encoder::new(),
        }
    }

    /// A reader handle on the ring.
    pub fn ring(&self) -> Ring {
        self.writer.ring()
    }

    /// The last-value cache this publisher keeps.
    pub fn lvc(&self) -> Arc<Lvc> {
        self.lvc.clone()
    }

    /// The registry this publisher records definitions in.
    pub fn registry(&self) -> &Arc<Registry> {
        &self.registry
    }

    /// Publishes a fresh frame: next `seq` of its stream, `ts_publish` = now, encoded once.
    #[inline]
    pub fn publish(&mut self, mut frame: Frame, guard: &crossbeam::epoch::Guard) {
        self.seqs.assign(&mut frame);
        frame.ts_publish = now_ns();
        let bytes: Box<[u8]> = self.encoder.encode(&frame).into();
        self.publish_encoded(&frame, bytes, guard);
    }

    /// Publishes a frame that already has its `seq` and `ts_publish`, as `bytes` (its rkyv
    /// encoding, which must be valid: readers access it unchecked). A frame with `seq` 0
    /// (heartbeats, replay markers) belongs to no stream and leaves the cache alone.
    #[inline]
    pub fn publish_encoded(
        &mut self,
        frame: &Frame,
        bytes: Box<[u8]>,
        guard: &crossbeam::epoch::Guard,
    ) {
        let lvc = &self.lvc;
        let (info, slot) = self
            .instruments
            .entry(frame.instrument)
            .or_insert_with(|| (None, lvc.slot(frame.instrument)));
        if let Body::Definition(d) = &frame.body
            && let Some(venue) = Venue::from_id(frame.venue)
        {
            let defined = self.registry.define(InstrumentInfo {
                id: frame.instrument,
                venue,
                symbol: d.symbol.clone(),
                price_decimals: d.price_decimals,
                qty_decimals: d.qty_decimals,
            });
            lvc::lock(slot).info = Some(defined.clone());
            *info = Some(defined);
        }
        // The cache first, then the ring: a session that reads a state tagged seq S finds
        // every later frame of the stream after its cursor.
        let totals = if frame.seq == 0 {
            None
        } else {
            let mut state = lvc::lock(slot);
            state.apply(frame);
            matches!(frame.body, Body::Trade(_)).then_some(state.totals)
        };
        let info = info.clone();
        self.writer
            .publish(Entry::new(frame, bytes, info, totals), guard);
    }

    /// Makes an instrument known before any of its frames is published (a replay knows its
    /// recording's instruments up front, so clients can subscribe before the first frame).
    pub fn define(&mut self, info: InstrumentInfo) {
        let defined = self.registry.define(info);
        let lvc = &self.lvc;
        let (known, slot) = self
            .instruments
            .entry(defined.id)
            .or_insert_with(|| (None, lvc.slot(defined.id)));
        lvc::lock(slot).info = Some(defined.clone());
        *known = Some(defined);
    }

    /// Wakes readers waiting for new entries (after a batch of publishes).
    pub fn wake_readers(&self) {
        self.writer.wake_readers();
    }

    /// Entries published so far.
    pub fn published(&self) -> u64 {
        self.writer.published()
    }
}
