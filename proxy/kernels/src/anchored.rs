//! The detectors' fast path: each detector knows where its matches can start (an `@`, a `?` or `&`,
//! `eyJ`, a digit after a non-word character...), found with `memchr`, and its regular expression
//! runs anchored at those places only. A plain search runs the pattern's automaton over the whole
//! value, forwards and then backwards to find where the match began; on secret-dense values (several
//! detectors' prefilters pass) that was most of a scan's time.
//!
//! What it must never change: the matches are those of the unanchored search (`find_rule`), which
//! the tests and the `kernels` fuzz target compare it with. That holds because the leftmost match
//! from a position is the anchored match at the first place a match can start, and each
//! [`next_start`] returns the first such place (a superset of real starts, in order, never skipping one).

use regex_automata::meta::Regex;
use regex_automata::{Anchored, Input};

use crate::detector::Detector;

/// A detector's pattern, compiled for anchored searches, its automaton at most `size_limit` bytes;
/// the error is the reason it could not be.
pub(crate) fn compile(d: Detector, size_limit: usize) -> Result<Regex, String> {
    Regex::builder()
        .configure(Regex::config().nfa_size_limit(Some(size_limit)))
        .build(d.pattern())
        .map_err(|e| e.to_string())
}

/// The next char boundary after `i`.
pub(crate) fn next_boundary(text: &str, i: usize) -> usize {
    let mut j = i + 1;
    while j < text.len() && !text.is_char_boundary(j) {
        j += 1;
    }
    j
}

fn word(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'_'
}

/// ASCII `\b` before a word character at `i`: the start, or a non-word character before it.
fn boundary_before(b: &[u8], i: usize) -> bool {
    i == 0 || !word(b[i - 1])
}

fn email_local(c: u8) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, b'.' | b'_' | b'%' | b'+' | b'-')
}

/// The first place at or after `from` where a match of `d` can start, and where to look next if
/// none starts there. `None`: no match starts at or after `from`.
pub(crate) fn next_start(d: Detector, b: &[u8], from: usize) -> Option<(usize, usize)> {
    let rest = b.get(from..)?;
    match d {
        // A run of local-part characters before an `@`: every start in the run reaches the same `@`
        // and the same domain, so the run's first character is the only one to try.
        Detector::Email => {
            for at in memchr::memchr_iter(b'@', rest).map(|i| from + i) {
                let mut s = at;
                while s > from && email_local(b[s - 1]) {
                    s -= 1;
                }
                if s < at {
                    return Some((s, at + 1));
                }
            }
            None
        }
        // `\b` then a digit.
        Detector::CreditCard => (from..b.len())
            .find(|&i| b[i].is_ascii_digit() && boundary_before(b, i))
            .map(|i| (i, i + 1)),
        // Where `quad_starts` says (the IPv4 detector has its own loop, `find_ipv4`).
        Detector::Ipv4 => crate::detector::quad_starts(b)
            .find(|&p| p >= from)
            .map(|p| (p, p + 1)),
        // Every address has a `:` at most four characters after its start: a hex digit after `\b`
        // (the first two forms), or `::` (the third).
        Detector::Ipv6 => {
            let mut after = from;
            for c in memchr::memchr_iter(b':', rest).map(|i| from + i) {
                for s in c.saturating_sub(4).max(after)..=c {
                    let hex = b[s].is_ascii_hexdigit() && boundary_before(b, s);
                    let double = b[s] == b':' && b.get(s + 1) == Some(&b':');
                    if hex || double {
                        return Some((s, s + 1));
                    }
                }
                after = c + 1;
            }
            None
        }
        // `\b` then `bearer`, in any case.
        Detector::Bearer => memchr::memchr2_iter(b'b', b'B', rest)
            .map(|i| from + i)
            .find(|&i| {
                boundary_before(b, i)
                    && b.get(i..i + 6)
                        .is_some_and(|w| w.eq_ignore_ascii_case(b"bearer"))
            })
            .map(|i| (i, i + 1)),
        // `\b` then `eyJ`.
        Detector::Jwt => memchr::memchr_iter(b'J', rest)
            .map(|i| from + i)
            .filter(|&j| j >= from + 2 && &b[j - 2..j] == b"ey")
            .map(|j| j - 2)
            .find(|&i| boundary_before(b, i))
            .map(|i| (i, i + 1)),
        // A `?` or an `&`.
        Detector::UrlSecret => memchr::memchr2(b'?', b'&', rest).map(|i| (from + i, from + i + 1)),
    }
}

/// The end of `re`'s match starting exactly at `start`, if there is one.
pub(crate) fn match_at(re: &Regex, text: &str, start: usize) -> Option<usize> {
    let input = Input::new(text).range(start..).anchored(Anchored::Yes);
    re.search(&input).map(|m| m.end())
}

/// How many bytes from `i` on `class` takes (a greedy run).
fn run(b: &[u8], i: usize, class: impl Fn(u8) -> bool) -> usize {
    b.get(i..)
        .map_or(0, |r| r.iter().position(|&c| !class(c)).unwrap_or(r.len()))
}

fn base64url(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'_' || c == b'-'
}

/// The JWT pattern (`eyJ[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+`) anchored at `start`, where
/// `next_start` found `eyJ` after a boundary. Its classes exclude the dots, so the greedy runs have
/// one way to match and a plain loop finds the same end as the automaton, at a fraction of its cost.
///
/// `Err(at)` when there is no match: no JWT starts before `at` either. An `eyJ` inside one of this
/// candidate's runs has the rest of the same runs for its parts, and needs as many parts after them,
/// so it fails where this one did; trying each of them made a value of `-eyJ` repeated quadratic.
fn jwt_end(b: &[u8], start: usize) -> Result<usize, usize> {
    let mut i = start + 3;
    for part in 0..3 {
        let n = run(b, i, base64url);
        if n == 0 {
            return Err(i);
        }
        i += n;
        if part < 2 {
            if b.get(i) != Some(&b'.') {
                return Err(i);
            }
            i += 1;
        }
    }
    Ok(i)
}

/// The bearer pattern (`(?i-u)\bbearer\s+[A-Za-z0-9\-._~+/]{8,}=*`) anchored at `start`, where
/// `next_start` found `bearer` after a boundary: ASCII white space, eight token characters or more,
/// then any `=`. No class holds a character of the next one, so the greedy runs are exact.
fn bearer_end(b: &[u8], start: usize) -> Option<usize> {
    let mut i = start + 6;
    // `\s` without Unicode: tab, line feed, vertical tab, form feed, carriage return, space.
    let space = run(b, i, |c| {
        matches!(c, b'\t' | b'\n' | 0x0b | 0x0c | b'\r' | b' ')
    });
    if space == 0 {
        return None;
    }
    i += space;
    let token = run(b, i, |c| {
        c.is_ascii_alphanumeric() || matches!(c, b'-' | b'.' | b'_' | b'~' | b'+' | b'/')
    });
    if token < 8 {
        return None;
    }
    i += token;
    Some(i + run(b, i, |c| c == b'='))
}

/// The e-mail pattern (`[A-Za-z0-9._%+\-]+@[A-Za-z0-9.\-]+\.[A-Za-z]{2,}`) anchored at `start`, the
/// first character of a run before an `@`. The greedy domain run gives characters back until a `.`
/// with two letters or more after it (at least one character after the `@`), and the letters run on:
/// the end the automaton's leftmost-first search finds.
fn email_end(b: &[u8], start: usize) -> Option<usize> {
    let at = start + run(b, start, email_local);
    if at == start || b.get(at) != Some(&b'@') {
        return None;
    }
    let domain = at + 1;
    let len = run(b, domain, |c| {
        c.is_ascii_alphanumeric() || c == b'.' || c == b'-'
    });
    (1..len)
        .rev()
        .filter(|&k| b[domain + k] == b'.')
        .find_map(|k| {
            let letters = run(b, domain + k + 1, |c| c.is_ascii_alphabetic());
            (letters >= 2).then_some(domain + k + 1 + letters)
        })
}

/// The parameter names of the URL-secret pattern.
const SECRET_PARAMETERS: [&[u8]; 12] = [
    b"access_token",
    b"token",
    b"api_key",
    b"apikey",
    b"key",
    b"secret",
    b"password",
    b"passwd",
    b"pwd",
    b"sig",
    b"signature",
    b"auth",
];

/// The URL-secret pattern (`(?i)([?&](?:access_token|token|...)=)[^&#\s]+`) anchored at a `?` or `&`:
/// `Some(end)` for a match, `Some(None)` for none. The name runs to the first `=` (no name holds
/// one) and is compared without ASCII case; the value runs to `&`, `#` or white space (Unicode's, as
/// `\s` is here). `None` when the name has a non-ASCII character: `(?i)` folds the Kelvin sign into
/// `k` and the long s into `s`, and the pattern decides.
fn url_secret_end(text: &str, start: usize) -> Option<Option<usize>> {
    let b = text.as_bytes();
    let name = start + 1;
    let mut eq = name;
    while eq < b.len() && eq - name <= 12 {
        match b[eq] {
            b'=' => break,
            c if !c.is_ascii() => return None,
            _ => eq += 1,
        }
    }
    if b.get(eq) != Some(&b'=')
        || !SECRET_PARAMETERS
            .iter()
            .any(|p| p.eq_ignore_ascii_case(&b[name..eq]))
    {
        return Some(None);
    }
    let value = eq + 1;
    let len = text[value..]
        .char_indices()
        .find(|&(_, c)| c == '&' || c == '#' || c.is_whitespace())
        .map_or(text.len() - value, |(i, _)| i);
    Some((len > 0).then_some(value + len))
}

/// Hands `found` the byte range of each of detector `d`'s matches in `text`, each checked against
/// look-alikes: what `find_rule` finds with the plain pattern, found by trying the anchored pattern
/// where a match can start.
pub(crate) fn find_detector(d: Detector, re: &Regex, text: &str, mut found: impl FnMut(u32, u32)) {
    let b = text.as_bytes();
    let mut at = 0;
    while at <= text.len() {
        let Some((start, skip)) = next_start(d, b, at) else {
            break;
        };
        let end = match d {
            Detector::Jwt => match jwt_end(b, start) {
                Ok(end) => Some(end),
                Err(failed_at) => {
                    at = failed_at;
                    continue;
                }
            },
            Detector::Bearer => bearer_end(b, start),
            Detector::Email => email_end(b, start),
            Detector::UrlSecret => {
                url_secret_end(text, start).unwrap_or_else(|| match_at(re, text, start))
            }
            _ => match_at(re, text, start),
        };
        let Some(end) = end else {
            at = skip;
            continue;
        };
        if d.accept(text, start, end) {
            // A URL secret's range is what follows its `?name=` (see `find_rule`).
            let from = if d == Detector::UrlSecret {
                memchr::memchr(b'=', &b[start..end]).map_or(start, |i| start + i + 1)
            } else {
                start
            };
            if end > from {
                found(from as u32, end as u32);
            }
            at = end;
        } else {
            // A refused candidate may hide a real one that starts inside it.
            at = next_boundary(text, start);
        }
    }
}

#[cfg(test)]
mod tests {
    /// A JWT that does not match says where the next one can start: every `eyJ` between its start and
    /// the place it failed fails there too (its parts are the rest of the same runs). `-eyJ` repeated
    /// (each one a candidate, their runs joined by the `-`) took time quadratic in the value's length
    /// while each candidate was tried: 2.9 s for 160 KB.
    #[test]
    fn a_failed_jwt_skips_the_candidates_it_covered() {
        let hostile = "-eyJ".repeat(1000);
        assert_eq!(super::jwt_end(hostile.as_bytes(), 1), Err(hostile.len()));
        assert_eq!(super::jwt_end(b"eyJa.b c", 0), Err(6), "no second dot");
        assert_eq!(super::jwt_end(b"eyJa..c", 0), Err(5), "an empty part");
        assert_eq!(super::jwt_end(b"eyJa.b.c d", 0), Ok(8));
    }
}
