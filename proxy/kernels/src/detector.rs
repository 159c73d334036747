//! The built-in detectors of sensitive values ([`Detector`]), their prefilters over a value's
//! byte profile, and the look-alike checks (a Luhn check and card-number prefixes).

/// A built-in detector of sensitive values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Detector {
    /// `user@example.com`.
    Email,
    /// 13 to 19 digits (single spaces or dashes allowed) with a card-network prefix and a valid Luhn
    /// checksum.
    CreditCard,
    /// Dotted quads with octets up to 255, not part of a longer dotted number.
    Ipv4,
    /// Full and compressed IPv6 addresses.
    Ipv6,
    /// `Bearer <token>`.
    Bearer,
    /// Three base64url parts starting `eyJ`.
    Jwt,
    /// Values of secret-looking query parameters in URLs (`token=`, `password=`, `api_key=`, ...): the
    /// range covers the value, not the parameter name.
    UrlSecret,
}

impl Detector {
    /// Every detector.
    pub const ALL: [Detector; 7] = [
        Detector::Email,
        Detector::CreditCard,
        Detector::Ipv4,
        Detector::Ipv6,
        Detector::Bearer,
        Detector::Jwt,
        Detector::UrlSecret,
    ];

    /// The name used in summaries and counters.
    pub fn name(self) -> &'static str {
        match self {
            Detector::Email => "email",
            Detector::CreditCard => "credit_card",
            Detector::Ipv4 => "ipv4",
            Detector::Ipv6 => "ipv6",
            Detector::Bearer => "bearer",
            Detector::Jwt => "jwt",
            Detector::UrlSecret => "url_secret",
        }
    }

    /// A cheap test, on the value's [`Profile`], that every value this detector can match passes: most
    /// values fail all of them, and then no regular expression runs at all.
    pub(crate) fn may_match(self, p: &Profile, v: &[u8]) -> bool {
        match self {
            Detector::Email => p.at > 0,
            Detector::CreditCard => p.digits >= 13 && has_digit_run(v, 13),
            Detector::Ipv4 => p.dots >= 3 && p.digits >= 4 && quad_starts(v).next().is_some(),
            Detector::Ipv6 => {
                p.colons >= 7
                    || (p.colons >= 2
                        && memchr::memchr_iter(b':', v).any(|i| v.get(i + 1) == Some(&b':')))
            }
            Detector::Bearer => p.r >= 2 && contains_ignore_case(v, b"bearer"),
            // `J` is rare: look for `ey` before each one (a `memmem` searcher is built per call).
            Detector::Jwt => {
                p.j > 0 && memchr::memchr_iter(b'J', v).any(|i| i >= 2 && &v[i - 2..i] == b"ey")
            }
            Detector::UrlSecret => p.eq > 0,
        }
    }
    /// The regular expression. Digits are ASCII `[0-9]`, not `\d` (which, in Unicode mode, also
    /// takes `٢` and the other decimal digits): the prefilters, [`luhn`] and [`card_number`] count
    /// ASCII digits only, and a pattern wider than its prefilter would match what the prefilter hid.
    pub(crate) fn pattern(self) -> &'static str {
        match self {
            Detector::Email => r"[A-Za-z0-9._%+\-]+@[A-Za-z0-9.\-]+\.[A-Za-z]{2,}",
            Detector::CreditCard => r"(?-u:\b)(?:[0-9][ \-]?){12,18}[0-9](?-u:\b)",
            Detector::Ipv4 => {
                r"(?-u:\b)(?:(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])\.){3}(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])(?-u:\b)"
            }
            Detector::Ipv6 => {
                r"(?i-u)\b(?:[0-9a-f]{1,4}:){7}[0-9a-f]{1,4}\b|(?i-u)\b(?:[0-9a-f]{1,4}:){1,7}:(?:[0-9a-f]{1,4}(?::[0-9a-f]{1,4}){0,6})?\b|(?-u)::(?:[0-9a-f]{1,4}:){0,6}[0-9a-f]{1,4}\b"
            }
            Detector::Bearer => r"(?i-u)\bbearer\s+[A-Za-z0-9\-._~+/]{8,}=*",
            Detector::Jwt => r"(?-u:\b)eyJ[A-Za-z0-9_\-]+\.[A-Za-z0-9_\-]+\.[A-Za-z0-9_\-]+",
            Detector::UrlSecret => {
                r"(?i)([?&](?:access_token|token|api_key|apikey|key|secret|password|passwd|pwd|sig|signature|auth)=)[^&#\s]+"
            }
        }
    }

    /// Whether a candidate the regular expression found at `start..end` of `text` is the real thing.
    pub(crate) fn accept(self, text: &str, start: usize, end: usize) -> bool {
        let b = text.as_bytes();
        let before = |k: usize| start.checked_sub(k).map(|i| b[i]);
        let after = |k: usize| b.get(end + k - 1).copied();
        let alnum = |c: Option<u8>| c.is_some_and(|c| c.is_ascii_alphanumeric());
        let digit = |c: Option<u8>| c.is_some_and(|c| c.is_ascii_digit());
        match self {
            Detector::CreditCard => {
                // Part of a longer run of numbers joined by dots or dashes (a UUID, a version, a date)?
                let joined = |sep: Option<u8>, next: Option<u8>| {
                    matches!(sep, Some(b'-' | b'.' | b'_' | b':' | b'/')) && alnum(next)
                };
                !joined(before(1), before(2))
                    && !joined(after(1), after(2))
                    && card_number(&text[start..end])
            }
            Detector::Ipv4 => {
                // `1.2.3.4.5`, `2.10.3.4.1`: a dotted number longer than four parts is a version.
                // ... and so is one right after a product name (`Chrome/120.0.0.0`) or a `v`.
                let dotted = |sep: Option<u8>, next: Option<u8>| sep == Some(b'.') && digit(next);
                let product = before(1) == Some(b'/') && alnum(before(2));
                let v = matches!(before(1), Some(b'v' | b'V')) && !alnum(before(2));
                !dotted(before(1), before(2)) && !dotted(after(1), after(2)) && !product && !v
            }
            Detector::Ipv6 => {
                let word =
                    |c: Option<u8>| c.is_some_and(|c| c.is_ascii_alphanumeric() || c == b'_');
                // `Class::add` and `a::b` are paths, not addresses; an address has a digit.
                !word(before(1))
                    && before(1) != Some(b':')
                    && !word(after(1))
                    && b[start..end].iter().any(u8::is_ascii_digit)
            }
            _ => true,
        }
    }
}

/// What one pass over a value learns, for the detectors' prefilters: counts of a few characters,
/// in a loop without branches that the compiler vectorizes (values are often random hex or base64,
/// where a branch per byte would be mispredicted half the time).
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct Profile {
    pub(crate) digits: u32,
    pub(crate) dots: u32,
    pub(crate) colons: u32,
    pub(crate) at: u32,
    pub(crate) eq: u32,
    /// `r` or `R` (in `bearer`; never in hex).
    pub(crate) r: u32,
    /// `J` (in `eyJ`; never in hex).
    pub(crate) j: u32,
}

impl Profile {
    pub(crate) fn of(v: &[u8]) -> Self {
        let mut p = Profile::default();
        // Byte-wide counters over chunks that cannot overflow them: sixteen lanes per vector.
        for chunk in v.chunks(255) {
            let (mut digits, mut dots, mut colons, mut at, mut eq, mut r, mut j) =
                (0u8, 0u8, 0u8, 0u8, 0u8, 0u8, 0u8);
            for &c in chunk {
                digits += u8::from(c.wrapping_sub(b'0') < 10);
                dots += u8::from(c == b'.');
                colons += u8::from(c == b':');
                at += u8::from(c == b'@');
                eq += u8::from(c == b'=');
                r += u8::from(c | 0x20 == b'r');
                j += u8::from(c == b'J');
            }
            p.digits += u32::from(digits);
            p.dots += u32::from(dots);
            p.colons += u32::from(colons);
            p.at += u32::from(at);
            p.eq += u32::from(eq);
            p.r += u32::from(r);
            p.j += u32::from(j);
        }
        p
    }
}

/// Whether `v` has a run of at least `min` digits with single spaces or dashes between them (a card
/// number's shape), looking at one byte in every `min` where nothing can be: such a run spans `min`
/// bytes or more, all digits, spaces or dashes, so a byte that is none of those rules out the `min`
/// before it. Most values that get here (a user agent, a URL with a hex token) have a handful of
/// digit groups, and then a few bytes are read, not all of them.
pub(crate) fn has_digit_run(v: &[u8], min: u32) -> bool {
    let part = |c: u8| c.is_ascii_digit() || c == b' ' || c == b'-';
    let n = (min as usize).max(1);
    let mut i = n - 1;
    while i < v.len() {
        if !part(v[i]) {
            i += n;
            continue;
        }
        // The whole stretch of digits, spaces and dashes around `i`.
        let (mut start, mut end) = (i, i + 1);
        while start > 0 && part(v[start - 1]) {
            start -= 1;
        }
        while end < v.len() && part(v[end]) {
            end += 1;
        }
        if longest_digit_run(&v[start..end]) >= min {
            return true;
        }
        // The next stretch starts after `end`'s byte, which is none of them.
        i = end + n;
    }
    false
}

/// The longest run of digits with single spaces or dashes between them (a card number's shape).
pub(crate) fn longest_digit_run(v: &[u8]) -> u32 {
    // Without branches: values that get here are often random hex, digits and letters alternating.
    let (mut best, mut run, mut sep) = (0u32, 0u32, 0u32);
    for &c in v {
        let d = u32::from(c.is_ascii_digit());
        let s = u32::from(c == b' ' || c == b'-');
        let keep = d | (s & (sep ^ 1) & u32::from(run > 0));
        run = (run + d) & 0u32.wrapping_sub(keep);
        sep = s & keep;
        best = best.max(run);
    }
    best
}

/// Where an IPv4 address can start in `v`: a digit after a non-word character (or at the start),
/// followed by four groups of one to three digits joined by dots. Every match of the IPv4 pattern
/// starts at one of these; most values have none.
pub(crate) fn quad_starts(v: &[u8]) -> impl Iterator<Item = usize> + '_ {
    let word = |c: u8| c.is_ascii_alphanumeric() || c == b'_';
    // An address's first dot is one to three digits after its start: look only around dots.
    let mut last = usize::MAX;
    memchr::memchr_iter(b'.', v).filter_map(move |dot| {
        let mut p = dot;
        while p > 0 && dot - p < 3 && v[p - 1].is_ascii_digit() {
            p -= 1;
        }
        if p == dot || (p > 0 && (word(v[p - 1]) || v[p - 1].is_ascii_digit())) || p == last {
            return None;
        }
        let mut i = p;
        for group in 0..4 {
            let start = i;
            while i < v.len() && i - start < 3 && v[i].is_ascii_digit() {
                i += 1;
            }
            if i == start {
                return None;
            }
            if group < 3 {
                if v.get(i) != Some(&b'.') {
                    return None;
                }
                i += 1;
            }
        }
        last = p;
        Some(p)
    })
}

/// Whether `hay` contains `needle` (lower-case ASCII, starting with a letter), ignoring ASCII case.
pub(crate) fn contains_ignore_case(hay: &[u8], needle: &[u8]) -> bool {
    let first = needle[0];
    memchr::memchr2_iter(first, first.to_ascii_uppercase(), hay).any(|i| {
        hay.get(i..i + needle.len())
            .is_some_and(|w| w.eq_ignore_ascii_case(needle))
    })
}

/// Luhn checksum of the ASCII digits in `s` (13 to 19 of them).
pub fn luhn(s: &str) -> bool {
    ascii_digits(s).is_some_and(|(d, n)| luhn_digits(&d[..n]))
}

/// The ASCII digits of `s` in a buffer, without allocating; `None` when there are more than 19.
fn ascii_digits(s: &str) -> Option<([u8; 19], usize)> {
    let mut digits = [0u8; 19];
    let mut n = 0;
    for c in s.bytes().filter(u8::is_ascii_digit) {
        *digits.get_mut(n)? = c - b'0';
        n += 1;
    }
    Some((digits, n))
}

/// Luhn checksum of 13 to 19 digit values.
fn luhn_digits(digits: &[u8]) -> bool {
    if !(13..=19).contains(&digits.len()) {
        return false;
    }
    let sum: u32 = digits
        .iter()
        .rev()
        .enumerate()
        .map(|(i, &d)| {
            let d = u32::from(d);
            if i % 2 == 1 {
                let x = d * 2;
                if x > 9 { x - 9 } else { x }
            } else {
                d
            }
        })
        .sum();
    sum.is_multiple_of(10)
}

/// A card number: a Luhn-valid number whose prefix and length belong to a card network (Visa,
/// Mastercard, American Express, Discover, JCB, Diners Club, UnionPay, Maestro). Timestamps in seconds,
/// milliseconds or nanoseconds since 1970 start with 1 and are refused here whatever their checksum.
pub fn card_number(s: &str) -> bool {
    // More than 19 digits is no card (and no Luhn number).
    let Some((buf, n)) = ascii_digits(s) else {
        return false;
    };
    let digits = &buf[..n];
    let p = |k: usize| {
        digits
            .get(..k)
            .map_or(0, |d| d.iter().fold(0u32, |a, &c| a * 10 + u32::from(c)))
    };
    let network = match digits.first() {
        Some(4) => matches!(n, 13 | 16 | 19),
        Some(2) => (2221..=2720).contains(&p(4)) && n == 16,
        Some(5) => ((51..=55).contains(&p(2)) && n == 16) || (n >= 12 && p(2) == 50),
        Some(3) => {
            (matches!(p(2), 34 | 37) && n == 15)
                || ((3528..=3589).contains(&p(4)) && (16..=19).contains(&n))
                || (((300..=305).contains(&p(3)) || matches!(p(2), 36 | 38 | 39)) && n >= 14)
        }
        Some(6) => (16..=19).contains(&n) || (n >= 12 && matches!(p(2), 56..=69)),
        _ => false,
    };
    network && luhn_digits(digits)
}

#[cfg(test)]
mod quad_tests {
    #[test]
    fn quad_starts_are_where_addresses_can_begin() {
        let starts: Vec<usize> =
            super::quad_starts(b"a 1.2.3.4 x10.0.0.1 (255.255.255.255").collect();
        assert_eq!(starts, vec![2, 21]);
        assert_eq!(super::quad_starts(b"1.2.3 and 1234.5.6.7").count(), 0);
    }
}
