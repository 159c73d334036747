//! The redaction rules, as plain Rust on strings: unit-tested natively, used by the filter in `lib.rs`.

use regex::{Regex, RegexSet};
use sha2::{Digest, Sha256};

/// What happens to a value that must not pass.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    /// Replace with `****` (the whole value for key rules, the matched part for value rules).
    Mask,
    /// Replace with `sha256:` and 16 hex digits of a salted SHA-256, so equal values stay joinable.
    Hash,
    /// Remove the attribute.
    Remove,
}

/// A built-in detector of sensitive values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Builtin {
    /// `user@example.com`.
    Email,
    /// 13 to 19 digits (spaces or dashes allowed) passing the Luhn check.
    CreditCard,
    /// Dotted quads with octets up to 255.
    Ipv4,
    /// Full and compressed IPv6 addresses.
    Ipv6,
    /// `Bearer <token>`.
    Bearer,
    /// Three base64url parts starting `eyJ`.
    Jwt,
    /// Values of secret-looking query parameters in URLs (`token=`, `password=`, `api_key=`, ...).
    UrlSecret,
}

impl Builtin {
    /// Every built-in.
    pub const ALL: [Builtin; 7] = [
        Builtin::Email,
        Builtin::CreditCard,
        Builtin::Ipv4,
        Builtin::Ipv6,
        Builtin::Bearer,
        Builtin::Jwt,
        Builtin::UrlSecret,
    ];

    /// The name used in summaries and counters.
    pub fn name(self) -> &'static str {
        match self {
            Builtin::Email => "email",
            Builtin::CreditCard => "credit_card",
            Builtin::Ipv4 => "ipv4",
            Builtin::Ipv6 => "ipv6",
            Builtin::Bearer => "bearer",
            Builtin::Jwt => "jwt",
            Builtin::UrlSecret => "url_secret",
        }
    }

    /// A cheap test every value this detector can match passes: most values fail all of them, and
    /// then no regular expression runs at all.
    fn may_match(self, v: &[u8], digits: usize) -> bool {
        let has = |c: u8| v.contains(&c);
        match self {
            Builtin::Email => has(b'@'),
            Builtin::CreditCard => digits >= 13,
            Builtin::Ipv4 => digits >= 4 && has(b'.'),
            Builtin::Ipv6 => v.iter().filter(|c| **c == b':').count() >= 2,
            Builtin::Bearer => v.windows(6).any(|w| w.eq_ignore_ascii_case(b"bearer")),
            Builtin::Jwt => v.windows(3).any(|w| w == b"eyJ"),
            Builtin::UrlSecret => has(b'='),
        }
    }

    fn pattern(self) -> &'static str {
        match self {
            Builtin::Email => r"[A-Za-z0-9._%+\-]+@[A-Za-z0-9.\-]+\.[A-Za-z]{2,}",
            Builtin::CreditCard => r"(?-u:\b)(?:\d[ \-]?){12,18}\d(?-u:\b)",
            Builtin::Ipv4 => {
                r"(?-u:\b)(?:(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)\.){3}(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(?-u:\b)"
            }
            Builtin::Ipv6 => {
                r"(?i-u)\b(?:[0-9a-f]{1,4}:){7}[0-9a-f]{1,4}\b|(?i-u)\b(?:[0-9a-f]{1,4}:){1,7}:(?:[0-9a-f]{1,4}(?::[0-9a-f]{1,4}){0,6})?\b|(?-u)::(?:[0-9a-f]{1,4}:){0,6}[0-9a-f]{1,4}\b"
            }
            Builtin::Bearer => r"(?i-u)\bbearer\s+[A-Za-z0-9\-._~+/]{8,}=*",
            Builtin::Jwt => r"(?-u:\b)eyJ[A-Za-z0-9_\-]+\.[A-Za-z0-9_\-]+\.[A-Za-z0-9_\-]+",
            Builtin::UrlSecret => {
                r"(?i)([?&](?:access_token|token|api_key|apikey|key|secret|password|passwd|pwd|sig|signature|auth)=)[^&#\s]+"
            }
        }
    }
}

/// Luhn checksum of the digits in `s`.
pub fn luhn(s: &str) -> bool {
    let digits: Vec<u32> = s.chars().filter_map(|c| c.to_digit(10)).collect();
    if !(13..=19).contains(&digits.len()) {
        return false;
    }
    let sum: u32 = digits
        .iter()
        .rev()
        .enumerate()
        .map(|(i, d)| {
            if i % 2 == 1 {
                let x = d * 2;
                if x > 9 { x - 9 } else { x }
            } else {
                *d
            }
        })
        .sum();
    sum.is_multiple_of(10)
}

/// The compiled rules.
#[derive(Debug)]
pub struct Rules {
    allow_keys: Option<Vec<String>>,
    block_keys: Vec<String>,
    block_key_patterns: Vec<Regex>,
    value_patterns: Vec<(String, Regex)>,
    builtins: Vec<(Builtin, Regex)>,
    /// Every value pattern (built-ins first, in order), for one pass that finds which of them match:
    /// most values match none, and then the pass is all the work.
    any: RegexSet,
    /// What happens to a redacted value.
    pub action: Action,
    salt: String,
}

/// The outcome for one string value.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// Nothing to redact.
    Clean,
    /// Replace the value with this; `what` names the rules that matched.
    Replace { value: String, what: Vec<String> },
    /// Remove the attribute; `what` names the rules.
    Remove { what: Vec<String> },
}

impl Rules {
    /// Compiles the rules; a bad regular expression is an error naming it.
    pub fn new(
        allow_keys: Option<Vec<String>>,
        block_keys: Vec<String>,
        block_key_patterns: Vec<String>,
        value_patterns: Vec<String>,
        builtins: Vec<Builtin>,
        action: Action,
        salt: String,
    ) -> Result<Self, String> {
        let compile = |p: &str| Regex::new(p).map_err(|e| format!("pattern `{p}`: {e}"));
        let any = RegexSet::new(
            builtins
                .iter()
                .map(|b| b.pattern().to_string())
                .chain(value_patterns.iter().cloned()),
        )
        .map_err(|e| format!("value patterns: {e}"))?;
        Ok(Self {
            any,
            allow_keys: allow_keys.map(|v| v.into_iter().map(|k| k.to_lowercase()).collect()),
            block_keys: block_keys.into_iter().map(|k| k.to_lowercase()).collect(),
            block_key_patterns: block_key_patterns
                .iter()
                .map(|p| compile(p))
                .collect::<Result<_, _>>()?,
            value_patterns: value_patterns
                .iter()
                .map(|p| Ok((p.clone(), compile(p)?)))
                .collect::<Result<_, String>>()?,
            builtins: builtins
                .into_iter()
                .map(|b| Ok((b, compile(b.pattern())?)))
                .collect::<Result<_, String>>()?,
            action,
            salt,
        })
    }

    /// True when the key itself says the value must go (not allowed, or blocked).
    pub fn key_blocked(&self, key: &str) -> bool {
        // Keys are compared case-insensitively; lists were lower-cased once, so no allocation here
        // for ASCII keys.
        let same = |k: &String| {
            if key.is_ascii() {
                k.eq_ignore_ascii_case(key)
            } else {
                *k == key.to_lowercase()
            }
        };
        if let Some(allow) = &self.allow_keys
            && !allow.iter().any(same)
        {
            return true;
        }
        self.block_keys.iter().any(same) || self.block_key_patterns.iter().any(|r| r.is_match(key))
    }

    fn hash(&self, v: &str) -> String {
        let mut h = Sha256::new();
        h.update(self.salt.as_bytes());
        h.update(v.as_bytes());
        let d = h.finalize();
        let hex: String = d.iter().take(8).map(|b| format!("{b:02x}")).collect();
        format!("sha256:{hex}")
    }

    fn replacement(&self, original: &str) -> String {
        match self.action {
            Action::Hash => self.hash(original),
            Action::Mask | Action::Remove => "****".to_string(),
        }
    }

    /// Decides for an attribute `key` with string value `value` (`key` None for a log body).
    pub fn check(&self, key: Option<&str>, value: &str) -> Outcome {
        if let Some(k) = key
            && self.key_blocked(k)
        {
            let what = vec![format!("key:{k}")];
            return match self.action {
                Action::Remove => Outcome::Remove { what },
                _ => Outcome::Replace {
                    value: self.replacement(value),
                    what,
                },
            };
        }
        if self.value_patterns.is_empty() {
            let v = value.as_bytes();
            let digits = v.iter().filter(|c| c.is_ascii_digit()).count();
            if !self.builtins.iter().any(|(b, _)| b.may_match(v, digits)) {
                return Outcome::Clean;
            }
        }
        let matched = self.any.matches(value);
        if !matched.matched_any() {
            return Outcome::Clean;
        }
        let mut what = Vec::new();
        let mut out = value.to_string();
        // Only the patterns that matched run again, to find and replace.
        let rules = matched.iter().map(|i| match self.builtins.get(i) {
            Some((b, r)) => (
                b.name().to_string(),
                r,
                *b == Builtin::CreditCard,
                *b == Builtin::UrlSecret,
            ),
            None => {
                let (p, r) = &self.value_patterns[i - self.builtins.len()];
                (format!("pattern:{p}"), r, false, false)
            }
        });
        for (name, re, card, url) in rules {
            let mut hit = false;
            let replaced = re.replace_all(&out, |c: &regex::Captures<'_>| {
                let m = &c[0];
                if card && !luhn(m) {
                    return m.to_string();
                }
                hit = true;
                if url {
                    // Keep `?token=`, redact what follows.
                    let prefix = c.get(1).map_or("", |p| p.as_str());
                    format!("{prefix}{}", self.replacement(&m[prefix.len()..]))
                } else {
                    self.replacement(m)
                }
            });
            if hit {
                out = replaced.into_owned();
                what.push(name);
            }
        }
        if what.is_empty() {
            Outcome::Clean
        } else if self.action == Action::Remove && key.is_some() {
            Outcome::Remove { what }
        } else {
            Outcome::Replace { value: out, what }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules(action: Action) -> Rules {
        Rules::new(
            None,
            vec!["password".into()],
            vec!["(?i)secret".into()],
            vec![r"\bORD-\d{6}\b".into()],
            Builtin::ALL.to_vec(),
            action,
            "pepper".into(),
        )
        .unwrap()
    }

    fn masked(v: &str) -> String {
        match rules(Action::Mask).check(Some("message"), v) {
            Outcome::Replace { value, .. } => value,
            Outcome::Clean => v.to_string(),
            Outcome::Remove { .. } => panic!("remove"),
        }
    }

    #[test]
    fn builtins_positive_and_negative() {
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
        ];
        for (input, want) in cases {
            assert_eq!(masked(input), want, "{input}");
        }
    }

    #[test]
    fn luhn_checks() {
        assert!(luhn("4111111111111111"));
        assert!(luhn("5500-0000-0000-0004"));
        assert!(!luhn("4111111111111112"));
        assert!(!luhn("1234"));
    }

    #[test]
    fn keys_block_allow_and_actions() {
        let r = rules(Action::Mask);
        assert!(r.key_blocked("Password"));
        assert!(r.key_blocked("db.client_secret"));
        assert!(!r.key_blocked("http.method"));
        assert_eq!(
            r.check(Some("password"), "hunter2"),
            Outcome::Replace {
                value: "****".into(),
                what: vec!["key:password".into()]
            }
        );
        let remove = rules(Action::Remove);
        assert!(matches!(
            remove.check(Some("x"), "mail a@b.io"),
            Outcome::Remove { .. }
        ));
        // A log body is never removed, only rewritten.
        assert!(matches!(
            remove.check(None, "mail a@b.io"),
            Outcome::Replace { .. }
        ));
        let hash = rules(Action::Hash);
        let a = hash.check(Some("user"), "a@b.io");
        let b = hash.check(Some("other"), "a@b.io");
        let (Outcome::Replace { value: a, .. }, Outcome::Replace { value: b, .. }) = (a, b) else {
            panic!()
        };
        assert_eq!(a, b, "hashes stay joinable");
        assert!(a.starts_with("sha256:") && a.len() == "sha256:".len() + 16);
        let allow = Rules::new(
            Some(vec!["service.name".into()]),
            vec![],
            vec![],
            vec![],
            vec![],
            Action::Remove,
            String::new(),
        )
        .unwrap();
        assert!(!allow.key_blocked("service.name"));
        assert!(allow.key_blocked("user.id"));
    }

    #[test]
    fn bad_patterns_are_reported() {
        let err = Rules::new(
            None,
            vec![],
            vec!["(".into()],
            vec![],
            vec![],
            Action::Mask,
            String::new(),
        )
        .unwrap_err();
        assert!(err.contains("pattern `(`"), "{err}");
    }
}
