//! What the `kernels` fuzz target checks (`fuzz/fuzz_targets/kernels.rs`), here so that it builds and is
//! tested with the crate: the detectors see attribute values from untrusted clients.

use std::sync::OnceLock;

use crate::{Detector, Found, PatternSet, PatternSpec, Rewrite, rewrite};

fn every_detector() -> &'static PatternSet {
    static SET: OnceLock<PatternSet> = OnceLock::new();
    SET.get_or_init(|| {
        PatternSet::compile(&PatternSpec {
            detectors: Detector::ALL.to_vec(),
            ..Default::default()
        })
        .expect("the built-in detectors compile")
    })
}

/// For any text: the prefilters hide no match (the same matches with and without them); every match
/// lies inside the text on char boundaries; masking the matches with nothing leaves exactly the text
/// between them.
pub fn detectors(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let set = every_detector();
    let (mut found, mut unfiltered) = (Vec::new(), Vec::new());
    set.find_values(&text, &mut found);
    set.find_values_unfiltered(&text, &mut unfiltered);
    let key = |f: &Found| (f.start, f.end, format!("{:?}", f.rule));
    let (mut a, mut b): (Vec<_>, Vec<_>) = (
        found.iter().map(key).collect(),
        unfiltered.iter().map(key).collect(),
    );
    a.sort();
    b.sort();
    assert_eq!(a, b, "a prefilter hid a match in {text:?}");
    for f in &found {
        let (s, e) = (f.start as usize, f.end as usize);
        assert!(s < e && e <= text.len(), "{f:?} outside {text:?}");
        assert!(
            text.is_char_boundary(s) && text.is_char_boundary(e),
            "{f:?} splits a char"
        );
    }
    let mut ranges: Vec<(u32, u32)> = found.iter().map(|f| (f.start, f.end)).collect();
    let masked = rewrite(&text, &mut ranges, &Rewrite::Mask(String::new()));
    let mut covered = vec![false; text.len()];
    for f in &found {
        covered[f.start as usize..f.end as usize].fill(true);
    }
    let kept: Vec<u8> = text
        .bytes()
        .zip(&covered)
        .filter(|(_, c)| !**c)
        .map(|(b, _)| b)
        .collect();
    assert_eq!(
        masked.as_bytes(),
        &kept[..],
        "masking removed the wrong bytes"
    );
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_fuzz_check_holds_on_the_detectors_own_examples() {
        for text in [
            "card 4111 1111 1111 1111 and 10.0.0.1",
            "mail a@b.io, Bearer abcdefghijklmnop, ::1",
            "Chrome/120.0.0.0 1.2.3.4.5 é10.0.0.1é",
            "",
        ] {
            super::detectors(text.as_bytes());
        }
    }

    /// The anchored fast path (`anchored`) against the plain patterns, where each detector's
    /// candidate starts and hand-written matchers could go wrong: runs before and after an `@`,
    /// boundaries, white space and `=` after a bearer token, short and broken JWTs, `::` and hex
    /// around colons, parameters in any case (and the Kelvin sign, which `(?i)` folds to `k`).
    #[test]
    fn the_anchored_fast_path_finds_what_the_plain_patterns_find() {
        for text in [
            "a@b.com@c.org a.b@c.d.ef .x@y.zz @@ a@ @b.cc a@b.c ab@cd.e.fg",
            "a@b.com.x@c.org mail:x+y%z@ex-ample.co.uk,,q@w.er",
            "Bearer abcdefgh bearer\tABCDEFGH== BEARER  abc xbearer abcdefghij Bearer\x0babcdefghij=",
            "bearer abcdefg bearer\n/+~._-abc== _bearer abcdefghijk bearer",
            "eyJa.b.c eyJ.b.c eyJa..c xeyJa.b.c -eyJabc.def.ghi eyJa.b. eyJa.b.c.d eyeyJa.b.c",
            "-eyJa.-eyJb.c -eyJ-eyJa.b.c eyJa.b -eyJc.d.e eyJa.-eyJb -eyJ.eyJa.b.c eyJa.b.-eyJc.d",
            "fe80::1 ::1 a::b 1:2:3:4:5:6:7:8 1:2:3:4:5:6:7:8:9 g::1 ::ffff:10.0.0.1 x1::2 12345::1",
            "2001:db8:1a2b:3c4d::5e6f :: ::: 1::: Class::add 0:0:0:0:0:0:0:0",
            "?token=abc&KEY=x &\u{212a}ey=kelvin ?sig=&password=p#w ?api_key=\u{3000}x &auth=a b",
            "?TOKEN=abc ?tokens=x ?=x &access_token=x\ty ?signature=a#b ?Signature=é&x ?\u{17f}ecret=s",
            "&token=\u{a0}x &token=a\u{2003}b &pwd=\u{85}x ?apikey=é ?api_key==x &&token=t ??key=k&",
            "a@b.cd@e.fg x@y.z1.ab q@-.aa q@a.-b r@a..bb s@a.b.c t@aa.b1 u@aa.bb1c v@a.bb.c w@.ab",
            "4539 1488 0343 6467 4539-1488-0343-6467 x4539148803436467 4539148803436467x 1-2-3-4-5-6-7-8-9-0-1-2-3",
            "45391488034364670000000 378282246310005 5555555555554444 1.4539148803436467",
            "Chrome/120.0.0.0 v1.2.3.4 10.0.0.1.5 a10.0.0.1 300.1.1.1 1.2.3.04",
        ] {
            super::detectors(text.as_bytes());
        }
    }

    /// What the fuzzer found in CI (fuzz/artifacts/kernels/crash-c8dd3c85…).
    #[test]
    fn the_fuzz_check_holds_on_what_the_fuzzer_found() {
        let mut input = b"+3055011 355\xd9\xa21 355011 7505".to_vec();
        input.extend([b'H'; 88]);
        input.extend(b" 01  02");
        super::detectors(&input);
    }
}
