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
