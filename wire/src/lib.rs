//! The batch wire format shared by `teiten-sensor` and `teiten-aggregator`.
//!
//! A sensor groups the events it records into a [`Batch`], numbers it per sensor and per spool
//! incarnation ([`BatchId`]), encodes it with [`encode`] and POSTs the bytes to the aggregator at
//! [`INGEST_PATH`]. The same bytes sit in the sensor's on-disk spool until the aggregator answers
//! with an [`Ack`], so a re-sent batch is byte-for-byte the one sent before and the aggregator can
//! deduplicate it by its [`BatchId`].
//!
//! Encoding: a 4-byte magic `TTB1`, then a zstd frame holding the postcard serialisation of the
//! batch. [`decode`] checks the magic, bounds the decompressed size ([`Limits`]) and reports what
//! is wrong with a malformed batch, never panicking on any input.

mod batch;
mod error;
mod event;
#[cfg(feature = "http-client")]
mod http;

pub use batch::{
    decode, encode, Ack, AckStatus, Batch, BatchId, Limits, SensorStats, CONTENT_TYPE, INGEST_PATH,
    MAGIC,
};
pub use error::WireError;
pub use event::{
    stealth_technique, Class, Event, Tags, IPPROTO_ICMP, IPPROTO_ICMPV6, IPPROTO_TCP, IPPROTO_UDP,
};
#[cfg(feature = "http-client")]
pub use http::http_agent;
