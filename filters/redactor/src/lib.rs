//! The redactor filter: removes secrets and personal data from resource, scope, span, span event, span
//! link, log record and metric data point attributes (for profiles: resource and scope attributes)
//! and from log bodies, before they leave the edge (the collector's `redaction` processor
//! counterpart).
//!
//! The matching and the rewriting run in weir, natively (`weir:filter/kernels`): the filter compiles
//! its rules into a pattern set once, at `init`, and per batch makes one call (`scan-and-redact`) that
//! finds and rewrites every match and returns counts, so no value and no match crosses into the filter
//! (only where the matches were, when `summary` asks for it). The detectors check their candidates against look-alikes: version
//! strings (`1.2.3.4.5`), timestamps, UUIDs and commit hashes pass untouched.
//!
//! Config (JSON), every field optional:
//! - `allow_keys`: when set, every other attribute key is redacted;
//! - `block_keys`: keys always redacted (case-insensitive); `block_key_patterns`: regexes on keys;
//! - `value_patterns`: regexes whose matches in string values are redacted;
//! - `builtins`: detectors to run (default all): `email`, `credit_card` (with a Luhn check and card
//!   network prefixes), `ipv4`, `ipv6`, `bearer`, `jwt`, `url_secret`;
//! - `action`: `mask` (default, `****`), `hash` (`sha256:` + 16 hex digits of a salted SHA-256, so equal
//!   values stay joinable; `salt`), or `remove` (the attribute goes; log bodies are masked instead);
//! - `summary` (default false): adds `redaction.redacted.keys` (the keys touched) and
//!   `redaction.redacted.count` to each item that had something redacted (event and link keys appear
//!   as `event.KEY` and `link.KEY`, the body as `body`);
//! - `log_bodies` (default true): also scan string log bodies.
//!
//! Every redaction is counted on `/metrics` as `weir_filter_counter_total{name="redacted"}`.

use weir_guest_sdk::kernels::{Detector, PatternSet, PatternSpec, Rewrite};
use weir_guest_sdk::{
    AttributeEdit, Batch, EditOp, Filter, Lists, Location, Value, Verdict, export_filter, host,
    parse_config,
};

/// A built-in detector, as the config names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Builtin {
    /// `user@example.com`.
    Email,
    /// Card numbers.
    CreditCard,
    /// IPv4 addresses.
    Ipv4,
    /// IPv6 addresses.
    Ipv6,
    /// `Bearer <token>`.
    Bearer,
    /// JSON web tokens.
    Jwt,
    /// Secret URL query parameters.
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

    fn detector(self) -> Detector {
        match self {
            Builtin::Email => Detector::Email,
            Builtin::CreditCard => Detector::CreditCard,
            Builtin::Ipv4 => Detector::Ipv4,
            Builtin::Ipv6 => Detector::Ipv6,
            Builtin::Bearer => Detector::Bearer,
            Builtin::Jwt => Detector::Jwt,
            Builtin::UrlSecret => Detector::UrlSecret,
        }
    }
}

/// What happens to a value that must not pass.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    /// Replace with `****` (the whole value for key rules, the matched part for value rules).
    Mask,
    /// Replace with `sha256:` and 16 hex digits of a salted SHA-256.
    Hash,
    /// Remove the attribute.
    Remove,
}

/// The configuration.
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    allow_keys: Option<Vec<String>>,
    #[serde(default)]
    block_keys: Vec<String>,
    #[serde(default)]
    block_key_patterns: Vec<String>,
    #[serde(default)]
    value_patterns: Vec<String>,
    builtins: Option<Vec<Builtin>>,
    #[serde(default = "mask")]
    action: Action,
    #[serde(default)]
    salt: String,
    #[serde(default)]
    summary: bool,
    #[serde(default = "yes")]
    log_bodies: bool,
}

fn mask() -> Action {
    Action::Mask
}
fn yes() -> bool {
    true
}

impl Config {
    /// The pattern set the config asks for.
    pub fn spec(&self) -> PatternSpec {
        PatternSpec {
            detectors: self
                .builtins
                .as_deref()
                .unwrap_or(&Builtin::ALL)
                .iter()
                .map(|b| b.detector())
                .collect(),
            value_patterns: self.value_patterns.clone(),
            key_names: self.block_keys.clone(),
            key_patterns: self.block_key_patterns.clone(),
            allow_keys: self.allow_keys.clone(),
        }
    }

    /// How matches are rewritten.
    pub fn rewrite(&self) -> Rewrite {
        match self.action {
            Action::Mask => Rewrite::Mask("****".into()),
            Action::Hash => Rewrite::Hash(self.salt.clone()),
            Action::Remove => Rewrite::Remove,
        }
    }
}

/// The filter.
pub struct Redactor {
    set: PatternSet,
    rewrite: Rewrite,
    summary: bool,
    log_bodies: bool,
}

/// The item a location belongs to, and the name its key has in the summary.
pub fn summary_entry(at: &Location, key: &str) -> Option<(u32, String)> {
    match at {
        Location::Item(i) => Some((*i, key.to_string())),
        Location::Point(p) => Some((p.item, key.to_string())),
        Location::Event(p) => Some((p.item, format!("event.{key}"))),
        Location::Link(p) => Some((p.item, format!("link.{key}"))),
        Location::Body(i) => Some((*i, "body".to_string())),
        Location::Resource(_) | Location::Scope(_) => None,
    }
}

impl Redactor {
    /// Finds and rewrites in one host call (`scan-and-redact`): the matches never cross into the
    /// filter, which gets back counts, and where the matches were only when it writes a summary.
    fn run(&self, batch: &Batch, lists: Lists) -> Verdict {
        let done = self
            .set
            .scan_and_redact(batch, lists, &self.rewrite, self.summary);
        if done.matched == 0 {
            return Verdict::Continue;
        }
        if self.summary {
            // Per item, the keys touched in it, in the order they were found.
            let mut items: std::collections::BTreeMap<u32, Vec<String>> = Default::default();
            for t in &done.touched {
                if let Some((item, key)) = summary_entry(&t.at, &t.key) {
                    items.entry(item).or_default().push(key);
                }
            }
            let mut edits = Vec::with_capacity(items.len() * 2);
            for (item, keys) in items {
                edits.push(AttributeEdit {
                    at: Location::Item(item),
                    key: "redaction.redacted.keys".into(),
                    op: EditOp::Set(Value::Str(keys.join(","))),
                });
                edits.push(AttributeEdit {
                    at: Location::Item(item),
                    key: "redaction.redacted.count".into(),
                    op: EditOp::Set(Value::Int(keys.len() as i64)),
                });
            }
            batch.edit(&edits);
        }
        host::counter_add("redacted", u64::from(done.matched));
        Verdict::Continue
    }
}

impl Filter for Redactor {
    fn init(config: &str) -> Result<Self, String> {
        let c: Config = parse_config(config)?;
        let set = PatternSet::compile(&c.spec())?;
        Ok(Self {
            set,
            rewrite: c.rewrite(),
            summary: c.summary,
            log_bodies: c.log_bodies,
        })
    }

    fn traces(&mut self, batch: &Batch) -> Verdict {
        self.run(
            batch,
            Lists::RESOURCES | Lists::SCOPES | Lists::ITEMS | Lists::EVENTS | Lists::LINKS,
        )
    }

    fn metrics(&mut self, batch: &Batch) -> Verdict {
        self.run(batch, Lists::RESOURCES | Lists::SCOPES | Lists::POINTS)
    }

    fn logs(&mut self, batch: &Batch) -> Verdict {
        let mut lists = Lists::RESOURCES | Lists::SCOPES | Lists::ITEMS;
        if self.log_bodies {
            lists = lists | Lists::BODIES;
        }
        self.run(batch, lists)
    }

    /// Profiles: their resource and scope attributes (a profile's own attributes, and its strings,
    /// live in the request's dictionary, which filters do not see).
    fn profiles(&mut self, batch: &Batch) -> Verdict {
        self.run(batch, Lists::RESOURCES | Lists::SCOPES)
    }
}

export_filter!(Redactor);

#[cfg(test)]
mod tests {
    use super::*;

    fn config(json: &str) -> Config {
        parse_config(json).unwrap()
    }

    #[test]
    fn the_config_becomes_a_pattern_set() {
        let c = config(
            r#"{"block_keys": ["password"], "block_key_patterns": ["(?i)secret"],
                "value_patterns": ["ORD-\\d+"], "builtins": ["email", "ipv4"]}"#,
        );
        let spec = c.spec();
        assert_eq!(spec.detectors, vec![Detector::Email, Detector::Ipv4]);
        assert_eq!(spec.key_names, vec!["password".to_string()]);
        assert_eq!(spec.value_patterns, vec!["ORD-\\d+".to_string()]);
        assert!(spec.allow_keys.is_none());
        assert_eq!(
            config("{}").spec().detectors.len(),
            7,
            "every built-in by default"
        );
        assert_eq!(
            config(r#"{"action": "hash", "salt": "pepper"}"#).rewrite(),
            Rewrite::Hash("pepper".into())
        );
        assert!(parse_config::<Config>(r#"{"builtins": ["phone"]}"#).is_err());
        assert!(parse_config::<Config>(r#"{"blok_keys": []}"#).is_err());
    }

    #[test]
    fn the_summary_names_keys_by_where_they_were() {
        use weir_guest_sdk::Part;
        let part = Part { item: 3, index: 1 };
        assert_eq!(
            summary_entry(&Location::Event(part), "k"),
            Some((3, "event.k".into()))
        );
        assert_eq!(
            summary_entry(&Location::Link(part), "k"),
            Some((3, "link.k".into()))
        );
        assert_eq!(
            summary_entry(&Location::Body(2), ""),
            Some((2, "body".into()))
        );
        assert_eq!(summary_entry(&Location::Resource(0), "k"), None);
    }
}
