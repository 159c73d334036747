//! The redactor filter: removes secrets and personal data from resource, span, span event, span link
//! and log attributes and from log bodies, before they leave the edge (the collector's `redaction` processor counterpart).
//!
//! Config (JSON), every field optional:
//! - `allow_keys`: when set, every other attribute key is redacted;
//! - `block_keys`: keys always redacted (case-insensitive); `block_key_patterns`: regexes on keys;
//! - `value_patterns`: regexes whose matches in string values are redacted;
//! - `builtins`: detectors to run (default all): `email`, `credit_card` (with a Luhn check), `ipv4`,
//!   `ipv6`, `bearer`, `jwt`, `url_secret`;
//! - `action`: `mask` (default, `****`), `hash` (`sha256:` + 16 hex digits of a salted SHA-256, so equal
//!   values stay joinable; `salt`), or `remove` (the attribute goes; log bodies are masked instead);
//! - `summary` (default false): adds `redaction.redacted.keys` (the keys touched) and
//!   `redaction.redacted.count` to each item that had something redacted (event and link keys appear
//!   as `event.KEY` and `link.KEY`);
//! - `log_bodies` (default true): also scan string log bodies.
//!
//! Every redaction is counted on `/metrics` as `weir_filter_counter_total{name="redacted"}`.

pub mod rules;

use rules::{Action, Builtin, Outcome, Rules};
use weir_guest_sdk::{Batch, Filter, Value, Verdict, export_filter, host, parse_config};

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Config {
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

/// The filter.
pub struct Redactor {
    rules: Rules,
    summary: bool,
    log_bodies: bool,
}

#[derive(Clone, Copy)]
enum Target {
    Resource(u32),
    Item(u32),
    Event(u32, u32),
    Link(u32, u32),
}

impl Redactor {
    /// Redacts one attribute list; returns the keys it touched.
    fn attributes(&self, batch: &Batch, target: Target) -> Vec<String> {
        let attrs = match target {
            Target::Resource(r) => batch.resource_attributes(r),
            Target::Item(i) => batch.attributes(i),
            Target::Event(i, e) => batch.event_attributes(i, e),
            Target::Link(i, l) => batch.link_attributes(i, l),
        };
        let mut touched = Vec::new();
        for a in attrs {
            let text = match &a.value {
                Value::Str(s) | Value::Json(s) => s.clone(),
                // Non-string values can only be redacted by their key.
                _ if self.rules.key_blocked(&a.key) => String::new(),
                _ => continue,
            };
            match self.rules.check(Some(&a.key), &text) {
                Outcome::Clean => {}
                Outcome::Replace { value, .. } => {
                    let v = Value::Str(value);
                    match target {
                        Target::Resource(r) => batch.set_resource_attribute(r, &a.key, &v),
                        Target::Item(i) => batch.set_attribute(i, &a.key, &v),
                        Target::Event(i, e) => batch.set_event_attribute(i, e, &a.key, &v),
                        Target::Link(i, l) => batch.set_link_attribute(i, l, &a.key, &v),
                    }
                    touched.push(a.key);
                }
                Outcome::Remove { .. } => {
                    match target {
                        Target::Resource(r) => batch.remove_resource_attribute(r, &a.key),
                        Target::Item(i) => batch.remove_attribute(i, &a.key),
                        Target::Event(i, e) => batch.remove_event_attribute(i, e, &a.key),
                        Target::Link(i, l) => batch.remove_link_attribute(i, l, &a.key),
                    };
                    touched.push(a.key);
                }
            }
        }
        touched
    }

    fn run(&self, batch: &Batch, bodies: bool) -> Verdict {
        let spans = !bodies;
        let mut total = 0u64;
        for r in batch.resources() {
            total += self.attributes(batch, Target::Resource(r)).len() as u64;
        }
        for item in batch.items() {
            let mut touched = self.attributes(batch, Target::Item(item));
            if spans {
                for e in 0..batch.event_count(item) {
                    let keys = self.attributes(batch, Target::Event(item, e));
                    touched.extend(keys.into_iter().map(|k| format!("event.{k}")));
                }
                for l in 0..batch.link_count(item) {
                    let keys = self.attributes(batch, Target::Link(item, l));
                    touched.extend(keys.into_iter().map(|k| format!("link.{k}")));
                }
            }
            if bodies
                && self.log_bodies
                && let Some(Value::Str(body)) = batch.body(item)
                && let Outcome::Replace { value, .. } = self.body_outcome(&body)
            {
                batch.set_body(item, &Value::Str(value));
                touched.push("body".into());
            }
            total += touched.len() as u64;
            if self.summary && !touched.is_empty() {
                batch.set_attribute(
                    item,
                    "redaction.redacted.keys",
                    &Value::Str(touched.join(",")),
                );
                batch.set_attribute(
                    item,
                    "redaction.redacted.count",
                    &Value::Int(touched.len() as i64),
                );
            }
        }
        if total > 0 {
            host::counter_add("redacted", total);
        }
        Verdict::Continue
    }

    fn body_outcome(&self, body: &str) -> Outcome {
        match self.rules.check(None, body) {
            // A body is rewritten, never removed.
            Outcome::Remove { what } => Outcome::Replace {
                value: "****".into(),
                what,
            },
            other => other,
        }
    }
}

impl Filter for Redactor {
    fn init(config: &str) -> Result<Self, String> {
        let c: Config = parse_config(config)?;
        let rules = Rules::new(
            c.allow_keys,
            c.block_keys,
            c.block_key_patterns,
            c.value_patterns,
            c.builtins.unwrap_or_else(|| Builtin::ALL.to_vec()),
            c.action,
            c.salt,
        )?;
        Ok(Self {
            rules,
            summary: c.summary,
            log_bodies: c.log_bodies,
        })
    }

    fn traces(&mut self, batch: &Batch) -> Verdict {
        self.run(batch, false)
    }

    fn logs(&mut self, batch: &Batch) -> Verdict {
        self.run(batch, true)
    }
}

export_filter!(Redactor);
