//! Compression of request bodies, both ways: gzip (flate2 on its zlib-rs backend) and zstd.
//!
//! Inflation is capped: a body that expands past its limit is refused after at most `limit + 1` bytes
//! were produced, so a compression bomb stops here, and a zstd frame cannot make the decoder reserve a
//! window larger than the limit calls for. Compression streams a request's parts through one encoder,
//! so merged requests are compressed as one stream without being copied together first.

use std::io::Read;

use bytes::Bytes;

/// A content encoding weir reads and writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    /// gzip (RFC 1952); concatenated members are one body.
    Gzip,
    /// zstd (RFC 8878); concatenated frames are one body.
    Zstd,
}

impl Encoding {
    /// The name in `Content-Encoding` and `grpc-encoding`.
    pub fn as_str(self) -> &'static str {
        match self {
            Encoding::Gzip => "gzip",
            Encoding::Zstd => "zstd",
        }
    }

    /// Parses a `Content-Encoding` / `grpc-encoding` value: `Ok(None)` for identity (or empty),
    /// `Err(())` for an encoding weir does not support.
    #[allow(clippy::result_unit_err)]
    pub fn parse(value: &str) -> Result<Option<Encoding>, ()> {
        let v = value.trim();
        if v.is_empty() || v.eq_ignore_ascii_case("identity") {
            Ok(None)
        } else if v.eq_ignore_ascii_case("gzip") || v.eq_ignore_ascii_case("x-gzip") {
            Ok(Some(Encoding::Gzip))
        } else if v.eq_ignore_ascii_case("zstd") {
            Ok(Some(Encoding::Zstd))
        } else {
            Err(())
        }
    }

    /// The level used when none is configured, chosen from the measured table in
    /// `docs/benchmarks.md` ("Compression levels"): the fastest level of each, whose ratio on OTLP is
    /// within a few percent of the default level's at a fraction of its CPU.
    pub fn default_level(self) -> i32 {
        match self {
            Encoding::Gzip => 1,
            Encoding::Zstd => 1,
        }
    }

    /// The levels a configuration may ask for.
    pub fn levels(self) -> std::ops::RangeInclusive<i32> {
        match self {
            Encoding::Gzip => 0..=9,
            Encoding::Zstd => 1..=19,
        }
    }
}

/// Why a compressed body was refused.
#[derive(Debug, thiserror::Error)]
pub enum DecompressError {
    /// The decompressed body exceeds the limit.
    #[error("request exceeds {limit} bytes after decompression")]
    TooLarge {
        /// The limit.
        limit: usize,
    },
    /// The memory budget refused the output buffer's growth (see [`decompress_with`]).
    #[error("inflating needs {bytes} bytes, more than weir's memory limit has room for")]
    OverBudget {
        /// The buffer size refused.
        bytes: usize,
    },
    /// The stream is corrupt.
    #[error("invalid {encoding} body: {source}")]
    Corrupt {
        /// `gzip` or `zstd`.
        encoding: &'static str,
        /// What the decoder said.
        source: std::io::Error,
    },
}

/// Inflates `body`, refusing without producing more than `limit + 1` bytes when it expands past
/// `limit`.
pub fn decompress(
    encoding: Encoding,
    body: &[u8],
    limit: usize,
) -> Result<Vec<u8>, DecompressError> {
    decompress_with(encoding, body, limit, |_| true)
}

/// How much output [`decompress_with`] asks for at a time.
const GROW_STEP: usize = 256 << 10;

/// What a gzip decoder holds besides its output, with room to spare: zlib-rs's 32 KiB window and
/// state, flate2's 32 KiB input buffer, and the header's optional fields (up to 64 KiB each).
const GZIP_STATE: usize = 256 << 10;
/// What a zstd decoder holds besides its window and output, with room to spare: its context (about
/// 95 KiB), its 128 KiB input buffer and its output slack.
const ZSTD_STATE: usize = 512 << 10;

/// The window the first zstd frame of `body` asks for (its header: a window descriptor, or the frame's
/// content size for a single-segment frame), if it is a zstd frame.
fn zstd_window(body: &[u8]) -> Option<u64> {
    if body.get(..4)? != [0x28, 0xb5, 0x2f, 0xfd] {
        return None;
    }
    let fhd = *body.get(4)?;
    let single_segment = fhd & 0x20 != 0;
    if !single_segment {
        let wd = *body.get(5)?;
        let log = 10 + u32::from(wd >> 3);
        let base = 1u64.checked_shl(log)?;
        return Some(base + base / 8 * u64::from(wd & 7));
    }
    // Single segment: the window is the content size, after the dictionary id.
    let dict_bytes = [0usize, 1, 2, 4][usize::from(fhd & 3)];
    let at = 5 + dict_bytes;
    let size = match fhd >> 6 {
        0 => u64::from(*body.get(at)?),
        1 => u64::from(u16::from_le_bytes(body.get(at..at + 2)?.try_into().ok()?)) + 256,
        2 => u64::from(u32::from_le_bytes(body.get(at..at + 4)?.try_into().ok()?)),
        _ => u64::from_le_bytes(body.get(at..at + 8)?.try_into().ok()?),
    };
    Some(size)
}

/// [`decompress`], asking `grow(bytes)` before what inflating holds grows to `bytes` (a memory
/// charge): the decoder's state (for zstd its window, as the frame asks for it) and the output
/// buffer, the old one and the new one while it moves. When it says no, inflating stops with [`DecompressError::OverBudget`] and nothing more is
/// allocated. The buffer grows by doubling from 256 KiB, so a bomb costs the charge its real size,
/// step by step, never the limit up front.
pub fn decompress_with(
    encoding: Encoding,
    body: &[u8],
    limit: usize,
    mut grow: impl FnMut(usize) -> bool,
) -> Result<Vec<u8>, DecompressError> {
    let corrupt = |source| DecompressError::Corrupt {
        encoding: encoding.as_str(),
        source,
    };
    let cap = limit as u64 + 1;
    let (mut reader, state): (Box<dyn Read + '_>, usize) = match encoding {
        Encoding::Gzip => (
            Box::new(flate2::read::MultiGzDecoder::new(body).take(cap)),
            GZIP_STATE,
        ),
        Encoding::Zstd => {
            // A frame's window is what the decoder allocates up front: charged first, and no larger
            // than the limit needs, nor than the first frame asked for (a later frame that asks for
            // more is refused as corrupt).
            let limit_log = usize::BITS - limit.max(1 << 10).leading_zeros();
            let window = zstd_window(body).unwrap_or(1 << 10).max(1 << 10);
            let window_log = (u64::BITS - (window - 1).leading_zeros()).min(limit_log.min(27));
            let state = (1usize << window_log) + ZSTD_STATE;
            if !grow(state) {
                return Err(DecompressError::OverBudget { bytes: state });
            }
            let mut decoder = zstd::stream::read::Decoder::with_buffer(body).map_err(corrupt)?;
            decoder.window_log_max(window_log).map_err(corrupt)?;
            (Box::new(decoder.take(cap)), state)
        }
    };
    let mut out: Vec<u8> = Vec::new();
    loop {
        if out.len() == out.capacity() {
            let want = out
                .capacity()
                .saturating_mul(2)
                .max(GROW_STEP)
                .min(limit.saturating_add(1).max(out.len() + 1));
            // While the buffer moves, the old one is held too (found by the hostile_body fuzz target).
            let holding = state + out.capacity() + want;
            if !grow(holding) {
                return Err(DecompressError::OverBudget { bytes: holding });
            }
            out.reserve_exact(want - out.len());
        }
        let len = out.len();
        // Zeroed a read's worth at a time, not the whole spare capacity per read.
        let end = out.capacity().min(len + (64 << 10));
        out.resize(end, 0);
        match reader.read(&mut out[len..end]) {
            Ok(0) => {
                out.truncate(len);
                break;
            }
            Ok(n) => out.truncate(len + n),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => out.truncate(len),
            Err(e) => return Err(corrupt(e)),
        }
    }
    if out.len() > limit {
        return Err(DecompressError::TooLarge { limit });
    }
    // Held as long as the request is, and charged by its length from admission on: no spare room.
    out.shrink_to_fit();
    Ok(out)
}

/// Compresses `parts`, in order, as one stream at `level` (see [`Encoding::levels`]).
///
/// Compressors are kept per thread and level and reset between uses: creating one costs far more
/// than compressing a small request does (zlib-rs allocates and clears some 300 KiB of state; a zstd
/// context allocates its tables), and a proxy compresses thousands of requests a second.
pub fn compress(encoding: Encoding, level: i32, parts: &[Bytes]) -> Bytes {
    let len: usize = parts.iter().map(Bytes::len).sum();
    // Compressing into a Vec cannot fail short of running out of memory; an encoder that reports an
    // error anyway yields the empty body, which the upstream refuses rather than weir losing track of
    // the data.
    let compressed = match encoding {
        Encoding::Gzip => gzip(level.clamp(0, 9) as u32, parts, len),
        Encoding::Zstd => zstd(level, parts, len),
    };
    Bytes::from(compressed.unwrap_or_default())
}

thread_local! {
    static GZIP: std::cell::RefCell<Vec<(u32, flate2::Compress)>> =
        const { std::cell::RefCell::new(Vec::new()) };
    static ZSTD: std::cell::RefCell<Vec<(i32, zstd::bulk::Compressor<'static>)>> =
        const { std::cell::RefCell::new(Vec::new()) };
}

fn gzip(level: u32, parts: &[Bytes], len: usize) -> std::io::Result<Vec<u8>> {
    use flate2::{Compress, FlushCompress, Status};
    GZIP.with_borrow_mut(|cache| {
        let i = match cache.iter().position(|(l, _)| *l == level) {
            Some(i) => i,
            None => {
                cache.push((
                    level,
                    Compress::new_gzip(flate2::Compression::new(level), 15),
                ));
                cache.len() - 1
            }
        };
        let c = &mut cache[i].1;
        c.reset();
        let mut out = Vec::with_capacity(len / 3 + 64);
        let mut feed = |mut input: &[u8], flush: FlushCompress| -> std::io::Result<()> {
            loop {
                if out.capacity() - out.len() < 64 {
                    out.reserve(out.capacity().max(4096));
                }
                let before = c.total_in();
                let status = c
                    .compress_vec(input, &mut out, flush)
                    .map_err(std::io::Error::other)?;
                input = &input[(c.total_in() - before) as usize..];
                let done = match flush {
                    FlushCompress::Finish => status == Status::StreamEnd,
                    _ => input.is_empty(),
                };
                if done {
                    return Ok(());
                }
            }
        };
        for p in parts {
            feed(p, FlushCompress::None)?;
        }
        feed(&[], FlushCompress::Finish)?;
        Ok(out)
    })
}

fn zstd(level: i32, parts: &[Bytes], len: usize) -> std::io::Result<Vec<u8>> {
    // zstd compresses one contiguous input here; merged parts are copied together first (a memcpy,
    // small beside compressing).
    let joined;
    let input: &[u8] = match parts {
        [one] => one,
        _ => {
            joined = parts.concat();
            &joined
        }
    };
    ZSTD.with_borrow_mut(|cache| {
        let i = match cache.iter().position(|(l, _)| *l == level) {
            Some(i) => i,
            None => {
                cache.push((level, zstd::bulk::Compressor::new(level)?));
                cache.len() - 1
            }
        };
        let mut out = Vec::with_capacity(zstd::zstd_safe::compress_bound(len));
        cache[i].1.compress_to_buffer(input, &mut out)?;
        Ok(out)
    })
}

/// gzip only: [`decompress`] with [`Encoding::Gzip`] (the `gzip` fuzz target's entry).
pub fn gunzip(body: &[u8], limit: usize) -> Result<Vec<u8>, DecompressError> {
    decompress(Encoding::Gzip, body, limit)
}

#[cfg(test)]
mod tests;
