//! A request's data as it flows through weir: the validated protobuf bytes it arrived as
//! ([`Encoded`]), decoded messages ([`Payload`]), or both.
//!
//! A protobuf request is checked by the [`walk`](crate::walk) and kept as its bytes; it is decoded only
//! when something needs to look inside (a filter, the debug exporter's detailed mode), and encoded only
//! when what goes out differs from what came in (a filter changed it, a router split it, it arrived as
//! JSON). Without filters, the bytes forwarded upstream and written to a durable queue are the bytes
//! received.

use bytes::Bytes;

use crate::walk::{self, Counts, WalkError};
use crate::{Payload, Signal};

/// An OTLP export request in protobuf wire format, known to decode, with its counts.
#[derive(Debug, Clone, PartialEq)]
pub struct Encoded {
    signal: Signal,
    bytes: Bytes,
    counts: Counts,
}

impl Encoded {
    /// Checks `bytes` as a request of `signal` (the walk: what prost would refuse is refused) and
    /// counts it, without decoding.
    pub fn parse(signal: Signal, bytes: Bytes) -> Result<Self, WalkError> {
        let counts = walk::walk(signal, &bytes)?;
        Ok(Self {
            signal,
            bytes,
            counts,
        })
    }

    /// Encodes a decoded request.
    pub fn encode(payload: &Payload) -> Self {
        Self {
            signal: payload.signal(),
            bytes: Bytes::from(payload.encode_protobuf()),
            counts: Counts {
                resources: payload.resource_count(),
                items: payload.item_count(),
                // Decoded already: nothing more to charge for it.
                decoded_bytes: 0,
            },
        }
    }

    /// Bytes weir wrote itself after checking them (a durable queue record), with their counts.
    pub fn trusted(signal: Signal, bytes: Bytes, items: usize) -> Self {
        Self {
            signal,
            bytes,
            counts: Counts {
                resources: 0,
                items,
                decoded_bytes: 0,
            },
        }
    }

    /// The signal.
    pub fn signal(&self) -> Signal {
        self.signal
    }

    /// The protobuf bytes.
    pub fn bytes(&self) -> &Bytes {
        &self.bytes
    }

    /// The protobuf bytes, owned.
    pub fn into_bytes(self) -> Bytes {
        self.bytes
    }

    /// Encoded size.
    pub fn len(&self) -> usize {
        self.bytes.len()
    }

    /// True for an empty request (no resources at all).
    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }

    /// Spans, metric data points or log records.
    pub fn items(&self) -> usize {
        self.counts.items
    }

    /// What the walk counted (zeros but the items for [`Encoded::trusted`] bytes).
    pub fn counts(&self) -> Counts {
        self.counts
    }

    /// Resources (0 for [`Encoded::trusted`] bytes, which were not walked again).
    pub fn resources(&self) -> usize {
        self.counts.resources
    }

    /// Decodes into messages.
    pub fn decode(&self) -> Result<Payload, prost::DecodeError> {
        Payload::decode_protobuf(self.signal, &self.bytes)
    }
}

/// A request as bytes, as messages, or both (see the module docs).
#[derive(Debug, Clone, PartialEq)]
pub struct Body {
    signal: Signal,
    encoded: Option<Encoded>,
    decoded: Option<Payload>,
}

impl Body {
    /// A request that arrived as (validated) protobuf.
    pub fn from_encoded(encoded: Encoded) -> Self {
        Self {
            signal: encoded.signal,
            encoded: Some(encoded),
            decoded: None,
        }
    }

    /// A request held as messages (it arrived as JSON, or filters changed it).
    pub fn from_payload(payload: Payload) -> Self {
        Self {
            signal: payload.signal(),
            encoded: None,
            decoded: Some(payload),
        }
    }

    /// Messages decoded from `encoded` that nobody changed: the bytes stay valid and are what goes
    /// out.
    pub fn unchanged(encoded: Encoded, payload: Payload) -> Self {
        Self {
            signal: encoded.signal,
            encoded: Some(encoded),
            decoded: Some(payload),
        }
    }

    /// The signal.
    pub fn signal(&self) -> Signal {
        self.signal
    }

    /// Items: counted once by the walk, or from the messages.
    pub fn items(&self) -> usize {
        match (&self.encoded, &self.decoded) {
            (Some(e), _) => e.items(),
            (None, Some(p)) => p.item_count(),
            (None, None) => 0,
        }
    }

    /// Resources.
    pub fn resources(&self) -> usize {
        match (&self.encoded, &self.decoded) {
            (Some(e), _) => e.resources(),
            (None, Some(p)) => p.resource_count(),
            (None, None) => 0,
        }
    }

    /// The bytes, when the request has them without encoding.
    pub fn as_encoded(&self) -> Option<&Encoded> {
        self.encoded.as_ref()
    }

    /// The messages, when the request has them without decoding.
    pub fn as_payload(&self) -> Option<&Payload> {
        self.decoded.as_ref()
    }

    /// The protobuf size, encoding only if the request has no bytes yet.
    pub fn encoded_len(&self) -> usize {
        match (&self.encoded, &self.decoded) {
            (Some(e), _) => e.len(),
            (None, Some(p)) => p.encoded_len(),
            (None, None) => 0,
        }
    }

    /// The bytes, encoding the messages when the request has no bytes.
    pub fn into_encoded(self) -> Encoded {
        match (self.encoded, self.decoded) {
            (Some(e), _) => e,
            (None, Some(p)) => Encoded::encode(&p),
            (None, None) => Encoded::encode(&Payload::empty(self.signal)),
        }
    }

    /// The messages and the bytes they were decoded from (if any), decoding when needed.
    pub fn into_parts(self) -> Result<(Payload, Option<Encoded>), prost::DecodeError> {
        match (self.encoded, self.decoded) {
            (e, Some(p)) => Ok((p, e)),
            (Some(e), None) => Ok((e.decode()?, Some(e))),
            (None, None) => Ok((Payload::empty(self.signal), None)),
        }
    }

    /// The messages, decoding when needed.
    pub fn into_payload(self) -> Result<Payload, prost::DecodeError> {
        self.into_parts().map(|(p, _)| p)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn example() -> Payload {
        let json = std::fs::read(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../tests/data/otlp-examples/trace.json"
        ))
        .unwrap();
        Payload::decode_json(Signal::Traces, &json).unwrap()
    }

    #[test]
    fn bytes_that_arrived_are_the_bytes_that_leave() {
        let p = example();
        let bytes = Bytes::from(p.encode_protobuf());
        let body = Body::from_encoded(Encoded::parse(Signal::Traces, bytes.clone()).unwrap());
        assert_eq!(body.items(), p.item_count());
        assert_eq!(body.resources(), p.resource_count());
        let out = body.into_encoded();
        // The same allocation: nothing was copied.
        assert_eq!(out.bytes().as_ptr(), bytes.as_ptr());
    }

    #[test]
    fn messages_are_decoded_on_demand_and_encoded_once() {
        let p = example();
        let e = Encoded::encode(&p);
        assert_eq!(
            (e.items(), e.resources()),
            (p.item_count(), p.resource_count())
        );
        let (decoded, original) = Body::from_encoded(e.clone()).into_parts().unwrap();
        assert_eq!(decoded, p);
        assert_eq!(original, Some(e.clone()));
        assert_eq!(Body::from_payload(p.clone()).into_encoded(), e);
        let unchanged = Body::unchanged(e.clone(), p);
        assert_eq!(
            unchanged.into_encoded().bytes().as_ptr(),
            e.bytes().as_ptr()
        );
    }

    #[test]
    fn invalid_bytes_are_refused() {
        assert!(Encoded::parse(Signal::Logs, Bytes::from_static(&[0x0a, 0x05, 0x01])).is_err());
    }
}
