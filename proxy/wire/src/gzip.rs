//! gzip request bodies, inflated within a size cap.

use std::io::Read;

/// Why a gzip body was refused.
#[derive(Debug, thiserror::Error)]
pub enum GzipError {
    /// The decompressed body exceeds the limit.
    #[error("request exceeds {limit} bytes after decompression")]
    TooLarge {
        /// The limit.
        limit: usize,
    },
    /// The gzip stream is corrupt.
    #[error("invalid gzip body: {0}")]
    Corrupt(std::io::Error),
}

/// Inflates a gzip body, refusing without allocating more than `limit + 1` bytes when it expands past
/// `limit` (a gzip bomb stops here). Concatenated gzip members are accepted.
pub fn gunzip(body: &[u8], limit: usize) -> Result<Vec<u8>, GzipError> {
    let mut out = Vec::with_capacity(body.len().saturating_mul(4).min(limit));
    flate2::read::MultiGzDecoder::new(body)
        .take(limit as u64 + 1)
        .read_to_end(&mut out)
        .map_err(GzipError::Corrupt)?;
    if out.len() > limit {
        return Err(GzipError::TooLarge { limit });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn gzip(data: &[u8]) -> Vec<u8> {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        e.write_all(data).unwrap();
        e.finish().unwrap()
    }

    #[test]
    fn gunzip_round_trips_and_caps_bombs() {
        let data = vec![b'a'; 10_000];
        assert_eq!(gunzip(&gzip(&data), 10_000).unwrap(), data);
        // Two members concatenated are one body.
        let mut two = gzip(b"ab");
        two.extend(gzip(b"cd"));
        assert_eq!(gunzip(&two, 100).unwrap(), b"abcd");
        // 64 MiB of zeros compresses to ~64 KiB; refused at 1 MiB without inflating it all.
        let bomb = gzip(&vec![0u8; 64 << 20]);
        assert!(bomb.len() < 100 << 10);
        assert!(matches!(
            gunzip(&bomb, 1 << 20),
            Err(GzipError::TooLarge { limit }) if limit == 1 << 20
        ));
        assert!(matches!(
            gunzip(b"not gzip", 100),
            Err(GzipError::Corrupt(_))
        ));
    }
}
