//! A session record's JSON size, counted without building the text, or the text built
//! only while it stays within a bound: `fit` decides from these whether and how much to
//! cut, with memory near the bound whatever the record's size.

use std::io::Write;

use serde::Serialize;

use super::log::SessionRecord;

/// The record as pretty JSON if that is at most `limit` bytes; memory stays within the
/// limit either way.
pub(super) fn write_within(
    record: &SessionRecord,
    limit: usize,
) -> serde_json::Result<Option<String>> {
    let mut out = Bounded {
        bytes: Vec::with_capacity(limit.min(64 * 1024)),
        limit,
    };
    match serde_json::to_writer_pretty(&mut out, record) {
        // serde_json writes UTF-8 only.
        Ok(()) => Ok(String::from_utf8(out.bytes).ok()),
        Err(e) if e.is_io() => Ok(None),
        Err(e) => Err(e),
    }
}

/// Keeps bytes written, and fails once there would be more than `limit`.
struct Bounded {
    bytes: Vec<u8>,
    limit: usize,
}

impl Write for Bounded {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        if self.bytes.len() + bytes.len() > self.limit {
            return Err(std::io::Error::other("over the limit"));
        }
        self.bytes.extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The record's pretty size if it is at most `limit` bytes, counted without building it.
pub(super) fn measure(record: &SessionRecord, limit: usize) -> serde_json::Result<Option<usize>> {
    let mut counter = Counter { bytes: 0, limit };
    match serde_json::to_writer_pretty(&mut counter, record) {
        Ok(()) => Ok(Some(counter.bytes)),
        Err(e) if e.is_io() => Ok(None),
        Err(e) => Err(e),
    }
}

/// The size of `value` as compact JSON, counted without building it.
pub(super) fn count(value: &impl Serialize) -> serde_json::Result<usize> {
    let mut counter = Counter {
        bytes: 0,
        limit: usize::MAX,
    };
    serde_json::to_writer(&mut counter, value)?;
    Ok(counter.bytes)
}

/// Counts bytes written, and fails once there are more than `limit`.
struct Counter {
    bytes: usize,
    limit: usize,
}

impl Write for Counter {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.bytes = self.bytes.saturating_add(bytes.len());
        if self.bytes > self.limit {
            return Err(std::io::Error::other("over the limit"));
        }
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}
