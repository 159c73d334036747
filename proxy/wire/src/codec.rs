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
mod tests {
    use super::*;

    #[test]
    fn both_encodings_round_trip_parts_as_one_stream() {
        let parts = [
            Bytes::from(vec![b'a'; 10_000]),
            Bytes::from_static(b"hello"),
            Bytes::new(),
            Bytes::from(vec![7u8; 3]),
        ];
        let whole: Vec<u8> = parts.iter().flat_map(|p| p.to_vec()).collect();
        for e in [Encoding::Gzip, Encoding::Zstd] {
            for level in [e.default_level(), *e.levels().end()] {
                let c = compress(e, level, &parts);
                assert!(c.len() < whole.len() / 10, "{e:?} {level}: {}", c.len());
                assert_eq!(decompress(e, &c, whole.len()).unwrap(), whole, "{e:?}");
                // The thread's compressor is reused: a second stream is whole and the same.
                let other = compress(e, level, &[Bytes::from_static(b"xyz")]);
                assert_eq!(decompress(e, &other, 3).unwrap(), b"xyz");
                assert_eq!(compress(e, level, &parts), c, "{e:?} {level}");
            }
        }
    }

    #[test]
    fn concatenated_members_and_frames_are_one_body() {
        for e in [Encoding::Gzip, Encoding::Zstd] {
            let mut two = compress(e, 1, &[Bytes::from_static(b"ab")]).to_vec();
            two.extend_from_slice(&compress(e, 1, &[Bytes::from_static(b"cd")]));
            assert_eq!(decompress(e, &two, 100).unwrap(), b"abcd", "{e:?}");
        }
    }

    #[test]
    fn bombs_stop_at_the_limit_and_garbage_is_corrupt() {
        // 16 MiB of zeros compresses to kilobytes; refused at 1 MiB without inflating it all.
        let zeros = Bytes::from(vec![0u8; 16 << 20]);
        for (e, level) in [(Encoding::Gzip, 9), (Encoding::Zstd, 1)] {
            let bomb = compress(e, level, std::slice::from_ref(&zeros));
            assert!(bomb.len() < 32 << 10, "{e:?}: {}", bomb.len());
            assert!(matches!(
                decompress(e, &bomb, 1 << 20),
                Err(DecompressError::TooLarge { limit }) if limit == 1 << 20
            ));
            assert!(matches!(
                decompress(e, b"not compressed", 100),
                Err(DecompressError::Corrupt { .. })
            ));
        }
    }

    #[test]
    fn inflating_asks_before_it_grows_and_stops_when_refused() {
        let bomb = compress(Encoding::Gzip, 1, &[Bytes::from(vec![0u8; 8 << 20])]);
        for encoding in [Encoding::Gzip, Encoding::Zstd] {
            let bomb = if encoding == Encoding::Gzip {
                bomb.clone()
            } else {
                compress(Encoding::Zstd, 1, &[Bytes::from(vec![0u8; 8 << 20])])
            };
            let mut asked = Vec::new();
            let out = decompress_with(encoding, &bomb, 32 << 20, |n| {
                asked.push(n);
                true
            })
            .unwrap();
            assert_eq!(out.len(), 8 << 20);
            assert!(out.capacity() <= *asked.last().unwrap(), "{asked:?}");
            let state = asked[0]
                - if encoding == Encoding::Gzip {
                    GROW_STEP
                } else {
                    0
                };
            assert!(
                state >= 32 << 10,
                "the decoder's state is charged: {asked:?}"
            );
            // Refused past 1 MiB of output: nothing larger is allocated.
            let mut largest = 0;
            let e = decompress_with(encoding, &bomb, 32 << 20, |n| {
                largest = n;
                n <= (1 << 20) + state
            })
            .unwrap_err();
            assert!(
                matches!(e, DecompressError::OverBudget { bytes } if bytes == largest),
                "{e:?}"
            );
            assert!(largest <= (3 << 20) + state + ZSTD_STATE, "{largest}");
        }
    }

    #[test]
    fn a_zstd_frames_window_is_read_from_its_header_and_charged_before_decoding() {
        let body = compress(Encoding::Zstd, 3, &[Bytes::from(vec![7u8; 100 << 10])]);
        let window = zstd_window(&body).expect("a zstd frame");
        assert!(window >= 100 << 10, "{window}");
        let mut first = None;
        decompress_with(Encoding::Zstd, &body, 32 << 20, |n| {
            first.get_or_insert(n);
            true
        })
        .unwrap();
        assert!(first.unwrap() as u64 >= window, "{first:?} < {window}");
        // Refused before the decoder is made when the window alone does not fit.
        let e = decompress_with(Encoding::Zstd, &body, 32 << 20, |_| false).unwrap_err();
        assert!(matches!(e, DecompressError::OverBudget { .. }));
        assert_eq!(zstd_window(b"not zstd"), None);
    }

    #[test]
    fn a_zstd_frame_asking_for_a_huge_window_is_refused() {
        use std::io::Write;
        // Compressed with a 128 MiB window (long-distance matching), read with a 4 MiB limit.
        let data = vec![1u8; 2 << 20];
        let mut e = zstd::stream::write::Encoder::new(Vec::new(), 1).unwrap();
        e.window_log(27).unwrap();
        e.long_distance_matching(true).unwrap();
        e.write_all(&data).unwrap();
        let c = e.finish().unwrap();
        assert!(decompress(Encoding::Zstd, &c, 4 << 20).is_err());
        // A limit that allows such a window reads it.
        assert_eq!(decompress(Encoding::Zstd, &c, 128 << 20).unwrap(), data);
    }

    #[test]
    fn content_encodings_parse() {
        assert_eq!(Encoding::parse(""), Ok(None));
        assert_eq!(Encoding::parse("identity"), Ok(None));
        assert_eq!(Encoding::parse(" GZIP "), Ok(Some(Encoding::Gzip)));
        assert_eq!(Encoding::parse("x-gzip"), Ok(Some(Encoding::Gzip)));
        assert_eq!(Encoding::parse("zstd"), Ok(Some(Encoding::Zstd)));
        assert_eq!(Encoding::parse("br"), Err(()));
    }
}
