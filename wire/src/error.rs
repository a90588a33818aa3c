/// Why a batch could not be encoded or decoded.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WireError {
    /// The body does not start with the `TTB1` magic: not a teiten batch, or another version.
    #[error("not a teiten batch: expected magic TTB1 in the first 4 bytes, found {found:02x?}")]
    BadMagic {
        /// The bytes found where the magic should be (fewer when the body is shorter).
        found: Vec<u8>,
    },
    /// The zstd frame is corrupt or truncated.
    #[error("batch compression is corrupt at byte {offset}: {source}")]
    Compression {
        /// Offset of the compressed payload in the body.
        offset: usize,
        /// The decompressor's error.
        source: std::io::Error,
    },
    /// The batch expands beyond the configured limit (a decompression bomb or a huge batch).
    #[error("batch expands to more than {limit} bytes")]
    TooLarge {
        /// The limit in bytes.
        limit: usize,
    },
    /// The payload does not deserialize as a batch.
    #[error("batch payload is malformed: {0}")]
    Payload(#[from] postcard::Error),
    /// The batch deserialized but breaks a rule of the format.
    #[error("batch is invalid: {0}")]
    Invalid(String),
    /// The batch has more events than the configured limit.
    #[error("batch has {count} events, more than the limit of {limit}")]
    TooManyEvents {
        /// Events in the batch.
        count: usize,
        /// The limit.
        limit: usize,
    },
}
