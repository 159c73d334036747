use super::*;
use std::sync::Arc;

fn all() -> PatternSet {
    PatternSet::compile(&PatternSpec {
        detectors: Detector::ALL.to_vec(),
        value_patterns: vec![r"\bORD-\d{6}\b".into()],
        key_names: vec!["password".into()],
        key_patterns: vec!["(?i)secret".into()],
        allow_keys: None,
    })
    .unwrap()
}

fn masked(set: &PatternSet, v: &str) -> String {
    let mut found = Vec::new();
    set.find_values(v, &mut found);
    let mut ranges: Vec<(u32, u32)> = found.iter().map(|f| (f.start, f.end)).collect();
    rewrite(v, &mut ranges, &Rewrite::Mask("****".into()))
}

#[test]
fn every_detector_finds_what_it_found_before() {
    // The cases of the 0.1 redactor's own tests, unchanged.
    let cases = [
        ("mail jane.doe@example.com now", "mail **** now"),
        (
            "not an email: jane@localhost",
            "not an email: jane@localhost",
        ),
        ("card 4111 1111 1111 1111 ok", "card **** ok"),
        (
            "card 4111 1111 1111 1112 fails luhn",
            "card 4111 1111 1111 1112 fails luhn",
        ),
        ("order 12345 is short", "order 12345 is short"),
        ("from 192.168.10.254:80", "from ****:80"),
        ("version 1.2.3.400", "version 1.2.3.400"),
        ("v6 2001:db8:85a3::8a2e:370:7334 here", "v6 **** here"),
        (
            "v6 full 2001:0db8:0000:0000:0000:ff00:0042:8329",
            "v6 full ****",
        ),
        ("time 12:30:45", "time 12:30:45"),
        (
            "Authorization: Bearer abc.DEF-123~xyz",
            "Authorization: ****",
        ),
        ("bearer of good news", "bearer of good news"),
        (
            "jwt eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2lnbmF0dXJl end",
            "jwt **** end",
        ),
        ("eyJ alone is fine", "eyJ alone is fine"),
        (
            "GET /cb?user=7&access_token=abc123&x=1",
            "GET /cb?user=7&access_token=****&x=1",
        ),
        ("GET /search?q=token", "GET /search?q=token"),
        ("ref ORD-123456 shipped", "ref **** shipped"),
        // More true positives: the common networks, addresses at the end of a sentence, loopback.
        ("visa 4012888888881881", "visa ****"),
        ("mc 5555-5555-5555-4444.", "mc ****."),
        ("amex 378282246310005", "amex ****"),
        ("discover 6011111111111117", "discover ****"),
        ("client 10.0.0.1.", "client ****."),
        ("peer=8.8.8.8,port=53", "peer=****,port=53"),
        ("listening on ::1", "listening on ****"),
        ("link fe80::1ff:fe23:4567:890a%eth0", "link ****%eth0"),
    ];
    let set = all();
    for (input, want) in cases {
        assert_eq!(masked(&set, input), want, "{input}");
    }
}

#[test]
fn look_alikes_pass_byte_identical() {
    let set = all();
    let cases = [
        // Versions with four or more dotted numbers.
        "1.2.3.4.5",
        "release 2.10.3.4.1",
        "kernel 6.1.0.18.2-amd64",
        "v10.20.30.40.50",
        "build 1.0.0.0.1234",
        // Timestamps.
        "2026-12-02T10:30:00.123456789Z",
        "2026-12-02 10:30:00,123",
        "at 1733097600",
        "at 1733097600121 (Luhn-valid milliseconds)",
        "ts 1733097600123456788 (Luhn-valid nanoseconds)",
        "ts 1733097600123456789",
        "ts=1764671400000000000",
        "Tue, 01 Dec 2026 10:30:00 GMT",
        "took 12:30:45.250",
        // Identifiers.
        "550e8400-e29b-41d4-a716-446655440000",
        "req 12345678-1234-4234-9234-123456789012",
        "42424242-4242-4242-4242-424242424242",
        "commit 3b18e512dba79e4c8300dd08aeb37f8e728b8dad",
        "commit 4111111111111111111111111111111111111111",
        "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
        "trace 4bf92f3577b34da6a3ce929d0e0e4736",
        "span 00f067aa0ba902b7",
        // Paths, dates, numbers, MACs, C++ and Rust names.
        "std::vector::push_back",
        "weir::filter::add",
        "Class::add",
        "mac 00:1a:2b:3c:4d:5e",
        "order 4111-1111-1111-1111-42",
        "phone +1 415 555 2671",
        "amount 1234567890123.45",
        "/api/v1/orders/4000056655665556/items",
        // Product versions in user agents.
        "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 Chrome/120.0.0.0 Safari/537.36",
        "grpc-java-netty/1.62.2.1 v2.4.1.7",
    ];
    for input in cases {
        let mut found = Vec::new();
        set.find_values(input, &mut found);
        assert!(found.is_empty(), "{input}: {found:?}");
        assert_eq!(masked(&set, input), input);
    }
}

#[test]
fn card_numbers_need_a_network_and_a_checksum() {
    assert!(card_number("4111111111111111"));
    assert!(card_number("5500-0000-0000-0004"));
    assert!(card_number("2223000048400011"));
    assert!(!card_number("4111111111111112"));
    // Luhn-valid, but a nanosecond timestamp.
    assert!(luhn("1733097600123456788"));
    assert!(!card_number("1733097600123456788"));
    assert!(!card_number("1234"));
    assert!(luhn("4111111111111111") && !luhn("1234"));
}

#[test]
fn key_rules_cover_the_whole_value() {
    let set = all();
    assert_eq!(set.key_rule("Password"), Some(Rule::KeyName(0)));
    assert_eq!(set.key_rule("db.client_secret"), Some(Rule::KeyPattern(0)));
    assert_eq!(set.key_rule("http.method"), None);
    let allow = PatternSet::compile(&PatternSpec {
        allow_keys: Some(vec!["service.name".into()]),
        ..Default::default()
    })
    .unwrap();
    assert_eq!(allow.key_rule("Service.Name"), None);
    assert_eq!(allow.key_rule("user.id"), Some(Rule::NotAllowed));
    assert!(!allow.has_value_rules() && allow.has_key_rules());
}

#[test]
fn rules_report_which_matched() {
    let set = all();
    let mut found = Vec::new();
    set.find_values("a@b.io and 10.1.2.3 and ORD-000001", &mut found);
    let rules: Vec<Rule> = found.iter().map(|f| f.rule).collect();
    assert_eq!(
        rules,
        vec![
            Rule::Detector(Detector::Email),
            Rule::Detector(Detector::Ipv4),
            Rule::ValuePattern(0)
        ]
    );
    let f = found[1];
    assert_eq!(
        &"a@b.io and 10.1.2.3 and ORD-000001"[f.start as usize..f.end as usize],
        "10.1.2.3"
    );
}

#[test]
fn rewrite_merges_overlaps_and_hashes() {
    let mut r = vec![(4, 8), (0, 2), (6, 10)];
    assert_eq!(
        rewrite("abcdefghijkl", &mut r, &Rewrite::Mask("*".into())),
        "*cd*kl"
    );
    let mut r = vec![(0, 6)];
    let h = rewrite("a@b.io", &mut r, &Rewrite::Hash("pepper".into()));
    assert_eq!(h, salted_hash("pepper", "a@b.io"));
    assert!(h.starts_with("sha256:") && h.len() == 7 + 16);
    assert_ne!(
        salted_hash("pepper", "a@b.io"),
        salted_hash("salt", "a@b.io")
    );
    // Out of range and inside a multi-byte char: clipped and widened, never a panic.
    let mut r = vec![(1, 2), (50, 60)];
    assert_eq!(rewrite("é!", &mut r, &Rewrite::Mask("#".into())), "#!");
    assert_eq!(
        sha256(b"abc")[..4],
        [0xba, 0x78, 0x16, 0xbf],
        "SHA-256 test vector"
    );
}

#[test]
fn bad_patterns_are_reported_and_sets_are_shared() {
    let err = PatternSet::compile(&PatternSpec {
        key_patterns: vec!["(".into()],
        ..Default::default()
    })
    .unwrap_err();
    assert!(err.to_string().contains("pattern `(`"), "{err}");
    let cache = PatternCache::default();
    let spec = PatternSpec {
        detectors: vec![Detector::Email],
        ..Default::default()
    };
    let a = cache.get(&spec).unwrap();
    let b = cache.get(&spec).unwrap();
    assert!(Arc::ptr_eq(&a, &b));
    assert_eq!(cache.len(), 1);
    drop((a, b));
    assert!(cache.is_empty());
}

#[test]
fn empty_matches_of_user_patterns_end() {
    let set = PatternSet::compile(&PatternSpec {
        value_patterns: vec!["x*".into()],
        ..Default::default()
    })
    .unwrap();
    let mut found = Vec::new();
    set.find_values("aéxxb", &mut found);
    assert_eq!(found.len(), 1);
    assert_eq!((found[0].start, found[0].end), (3, 5));
}

#[test]
fn prefilters_never_hide_a_match() {
    // Random strings over the characters the detectors care about: with and without the cheap
    // prefilters, the same matches.
    let set = all();
    let alphabet: Vec<char> = "0123456789.-: @=:/?&abeyJBearer_xZ\t٢".chars().collect();
    let mut state = 0x9E37_79B9_7F4A_7C15u64;
    let mut next = || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let seeds = [
        "4111 1111 1111 1111",
        "10.0.0.1",
        "a@b.io",
        "::1",
        "Bearer abcdefghijk",
        "eyJa.b.c",
        "?token=x",
    ];
    for round in 0..20_000 {
        let mut text = String::new();
        if round % 3 == 0 {
            text.push_str(seeds[(next() % seeds.len() as u64) as usize]);
        }
        for _ in 0..(next() % 40) {
            text.push(alphabet[(next() % alphabet.len() as u64) as usize]);
        }
        let (mut a, mut b) = (Vec::new(), Vec::new());
        set.find_values(&text, &mut a);
        set.find_values_unfiltered(&text, &mut b);
        let key = |f: &Found| (f.start, f.end, format!("{:?}", f.rule));
        let mut a: Vec<_> = a.iter().map(key).collect();
        let mut b: Vec<_> = b.iter().map(key).collect();
        a.sort();
        b.sort();
        assert_eq!(a, b, "{text:?}");
    }
}
