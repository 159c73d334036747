//! The router's decision logic, free of Wasm so that it is tested natively: rules, matchers, and the
//! choice of exporters for one item.

use regex::Regex;

/// Where a rule looks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum From {
    /// A resource attribute.
    ResourceAttribute,
    /// A request header (gRPC metadata), by lower-case name.
    Header,
    /// An attribute of the span or log record (of a metric's first data point).
    Attribute,
    /// The request's tenant, as the receiver's `auth` decided it (no `key`).
    Tenant,
}

/// One rule as configured.
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleConfig {
    /// Where to look.
    pub from: From,
    /// The attribute key or header name (none for `tenant`).
    #[serde(default)]
    pub key: String,
    /// The value equals this.
    pub exact: Option<String>,
    /// The value starts with this.
    pub prefix: Option<String>,
    /// The value matches this regular expression (unanchored; use `^...$` to anchor).
    pub regex: Option<String>,
    /// Where matching items go.
    pub exporters: Vec<String>,
}

/// The router's configuration.
#[derive(Debug, Clone, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Rules, in order.
    #[serde(default)]
    pub routes: Vec<RuleConfig>,
    /// Where items no rule matches go. Absent or empty: they stay unlabelled and go to the pipeline's
    /// `exporters`.
    #[serde(default)]
    pub default: Vec<String>,
    /// `first` (default): the first matching rule decides. `all`: the item goes to the exporters of
    /// every matching rule.
    #[serde(default, rename = "match")]
    pub mode: Mode,
}

/// How several matching rules combine.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    /// The first matching rule decides.
    #[default]
    First,
    /// Every matching rule adds its exporters.
    All,
}

/// How a rule compares a value.
#[derive(Debug, Clone)]
pub enum Matcher {
    /// Equal.
    Exact(String),
    /// Starts with.
    Prefix(String),
    /// Matches.
    Regex(Regex),
    /// The key is present, whatever its value.
    Present,
}

impl Matcher {
    /// Whether `value` (absent: the key is missing) matches.
    pub fn matches(&self, value: Option<&str>) -> bool {
        let Some(v) = value else { return false };
        match self {
            Matcher::Exact(e) => v == e,
            Matcher::Prefix(p) => v.starts_with(p.as_str()),
            Matcher::Regex(r) => r.is_match(v),
            Matcher::Present => true,
        }
    }
}

/// One compiled rule.
#[derive(Debug, Clone)]
pub struct Rule {
    /// Where it looks.
    pub from: From,
    /// The key or header name.
    pub key: String,
    /// The comparison.
    pub matcher: Matcher,
    /// Index of its exporter set in [`Router::sets`].
    pub set: usize,
}

/// A decision for one item.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    /// A rule matched: this exporter set.
    Matched(usize),
    /// No rule matched: the default set.
    Default(usize),
    /// No rule matched and there is no default: the item stays unlabelled.
    Unlabelled,
}

impl Route {
    /// The exporter set, if any.
    pub fn set(self) -> Option<usize> {
        match self {
            Route::Matched(s) | Route::Default(s) => Some(s),
            Route::Unlabelled => None,
        }
    }
}

/// Compiled rules and the exporter sets they lead to.
#[derive(Debug, Clone)]
pub struct Router {
    /// The rules, in order.
    pub rules: Vec<Rule>,
    /// Distinct exporter sets; decisions are indexes into it.
    pub sets: Vec<Vec<String>>,
    /// The default set, if any.
    pub default: Option<usize>,
    /// How matches combine.
    pub mode: Mode,
    /// True when some rule looks at item attributes (decisions are then per item).
    pub per_item: bool,
}

impl Router {
    /// Compiles `config`. With a non-empty `known`, every exporter name must be in it.
    pub fn new(config: Config, known: &[String]) -> Result<Self, String> {
        let mut sets: Vec<Vec<String>> = Vec::new();
        let intern = |mut names: Vec<String>, sets: &mut Vec<Vec<String>>| -> usize {
            names.sort();
            names.dedup();
            match sets.iter().position(|s| *s == names) {
                Some(i) => i,
                None => {
                    sets.push(names);
                    sets.len() - 1
                }
            }
        };
        let check = |names: &[String], what: &str| -> Result<(), String> {
            if known.is_empty() {
                return Ok(());
            }
            for n in names {
                if !known.contains(n) {
                    return Err(format!(
                        "{what}: unknown exporter `{n}` (weir has: {})",
                        known.join(", ")
                    ));
                }
            }
            Ok(())
        };
        let mut rules = Vec::new();
        for (i, r) in config.routes.into_iter().enumerate() {
            let what = format!("routes[{i}]");
            match (r.from, r.key.is_empty()) {
                (From::Tenant, false) => {
                    return Err(format!("{what}.key: a tenant rule has no key"));
                }
                (From::Tenant, true) | (_, false) => {}
                (_, true) => return Err(format!("{what}.key: must not be empty")),
            }
            if r.exporters.is_empty() {
                return Err(format!("{what}.exporters: name at least one exporter"));
            }
            check(&r.exporters, &format!("{what}.exporters"))?;
            let matcher = match (r.exact, r.prefix, r.regex) {
                (Some(e), None, None) => Matcher::Exact(e),
                (None, Some(p), None) => Matcher::Prefix(p),
                (None, None, Some(re)) => {
                    Matcher::Regex(Regex::new(&re).map_err(|e| format!("{what}.regex: {e}"))?)
                }
                (None, None, None) => Matcher::Present,
                _ => return Err(format!("{what}: use one of exact, prefix and regex")),
            };
            let key = if r.from == From::Header {
                r.key.to_ascii_lowercase()
            } else {
                r.key
            };
            rules.push(Rule {
                from: r.from,
                key,
                matcher,
                set: intern(r.exporters, &mut sets),
            });
        }
        check(&config.default, "default")?;
        let default = (!config.default.is_empty()).then(|| intern(config.default, &mut sets));
        let per_item = rules.iter().any(|r| r.from == From::Attribute);
        Ok(Self {
            rules,
            sets,
            default,
            mode: config.mode,
            per_item,
        })
    }

    /// The exporter set for one item: `lookup(from, key)` gives the value a rule looks at, borrowed
    /// (deciding allocates nothing in `first` mode). In `all` mode several matching rules give a union,
    /// added to `sets` as needed.
    pub fn decide<'v>(&mut self, mut lookup: impl FnMut(From, &str) -> Option<&'v str>) -> Route {
        self.decide_with(|_, r| lookup(r.from, &r.key))
    }

    /// As [`Router::decide`], with `lookup(i)` giving the value rule `i` looks at: a caller that
    /// resolves each rule's source once per batch compares no keys per item.
    pub fn decide_by_rule<'v>(
        &mut self,
        mut lookup: impl FnMut(usize) -> Option<&'v str>,
    ) -> Route {
        self.decide_with(|i, _| lookup(i))
    }

    fn decide_with<'v>(
        &mut self,
        mut lookup: impl FnMut(usize, &Rule) -> Option<&'v str>,
    ) -> Route {
        let unmatched = match self.default {
            Some(d) => Route::Default(d),
            None => Route::Unlabelled,
        };
        match self.mode {
            Mode::First => self
                .rules
                .iter()
                .enumerate()
                .find(|(i, r)| r.matcher.matches(lookup(*i, r)))
                .map_or(unmatched, |(_, r)| Route::Matched(r.set)),
            Mode::All => {
                let matched: Vec<usize> = self
                    .rules
                    .iter()
                    .enumerate()
                    .filter(|(i, r)| r.matcher.matches(lookup(*i, r)))
                    .map(|(_, r)| r.set)
                    .collect();
                match matched[..] {
                    [] => unmatched,
                    [one] => Route::Matched(one),
                    _ => {
                        let mut union: Vec<String> = matched
                            .iter()
                            .flat_map(|s| self.sets[*s].iter().cloned())
                            .collect();
                        union.sort();
                        union.dedup();
                        Route::Matched(match self.sets.iter().position(|s| *s == union) {
                            Some(i) => i,
                            None => {
                                self.sets.push(union);
                                self.sets.len() - 1
                            }
                        })
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(json: &str) -> Config {
        serde_json::from_str(json).unwrap()
    }

    fn names(r: &Router, route: Route) -> Option<Vec<&str>> {
        route
            .set()
            .map(|s| r.sets[s].iter().map(String::as_str).collect())
    }

    const RULES: &str = r#"{
        "routes": [
            {"from": "resource_attribute", "key": "tenant", "exact": "acme", "exporters": ["acme"]},
            {"from": "header", "key": "X-Team", "prefix": "pay", "exporters": ["payments", "archive"]},
            {"from": "attribute", "key": "http.route", "regex": "^/internal/", "exporters": ["internal"]},
            {"from": "attribute", "key": "debug", "exporters": ["archive"]},
            {"from": "tenant", "exact": "team-t", "exporters": ["acme"]}
        ],
        "default": ["primary"]
    }"#;

    fn known() -> Vec<String> {
        ["acme", "payments", "archive", "internal", "primary"]
            .iter()
            .map(|s| s.to_string())
            .collect()
    }

    /// A lookup over (from, key, value) triples.
    fn values<'a>(
        v: &'a [(From, &'a str, &'a str)],
    ) -> impl FnMut(From, &str) -> Option<&'a str> + 'a {
        move |from, key| {
            v.iter()
                .find(|(f, k, _)| *f == from && *k == key)
                .map(|(_, _, v)| *v)
        }
    }

    #[test]
    fn each_selector_and_matcher_routes() {
        let mut r = Router::new(config(RULES), &known()).unwrap();
        assert!(r.per_item);
        let d = r.decide(values(&[(From::ResourceAttribute, "tenant", "acme")]));
        assert_eq!(names(&r, d), Some(vec!["acme"]));
        let d = r.decide(values(&[(From::ResourceAttribute, "tenant", "acme-2")]));
        assert_eq!(names(&r, d), Some(vec!["primary"]), "exact is exact");
        let d = r.decide(values(&[(From::Header, "x-team", "payments-eu")]));
        assert_eq!(names(&r, d), Some(vec!["archive", "payments"]));
        let d = r.decide(values(&[(From::Header, "x-team", "ops")]));
        assert_eq!(names(&r, d), Some(vec!["primary"]));
        let d = r.decide(values(&[(
            From::Attribute,
            "http.route",
            "/internal/health",
        )]));
        assert_eq!(names(&r, d), Some(vec!["internal"]));
        let d = r.decide(values(&[(From::Attribute, "http.route", "/api/internal/")]));
        assert_eq!(names(&r, d), Some(vec!["primary"]), "the regex is anchored");
        let d = r.decide(values(&[(From::Attribute, "debug", "")]));
        assert_eq!(names(&r, d), Some(vec!["archive"]), "presence matches");
        let d = r.decide(values(&[(From::Tenant, "", "team-t")]));
        assert_eq!(names(&r, d), Some(vec!["acme"]), "the tenant routes");
        let d = r.decide(values(&[(From::Tenant, "", "team-u")]));
        assert_eq!(names(&r, d), Some(vec!["primary"]));
    }

    #[test]
    fn first_match_wins_unless_all_is_asked_for() {
        let both = [
            (From::ResourceAttribute, "tenant", "acme"),
            (From::Attribute, "debug", "1"),
        ];
        let mut r = Router::new(config(RULES), &known()).unwrap();
        let d = r.decide(values(&both));
        assert_eq!(names(&r, d), Some(vec!["acme"]));
        let mut c = config(RULES);
        c.mode = Mode::All;
        let mut r = Router::new(c, &known()).unwrap();
        let d = r.decide(values(&both));
        assert_eq!(names(&r, d), Some(vec!["acme", "archive"]));
        let again = r.decide(values(&both));
        assert_eq!(d, again, "unions are interned");
    }

    #[test]
    fn without_a_default_unmatched_items_stay_unlabelled() {
        let mut c = config(RULES);
        c.default.clear();
        let mut r = Router::new(c, &known()).unwrap();
        assert_eq!(r.decide(values(&[])), Route::Unlabelled);
        let mut r = Router::new(config(RULES), &known()).unwrap();
        assert!(matches!(r.decide(values(&[])), Route::Default(_)));
    }

    #[test]
    fn unknown_exporters_and_bad_rules_are_refused_at_init() {
        let e = Router::new(config(RULES), &["primary".to_string()]).unwrap_err();
        assert!(
            e.contains("routes[0].exporters: unknown exporter `acme`"),
            "{e}"
        );
        assert!(e.contains("weir has: primary"), "{e}");
        let c = config(r#"{"default": ["nope"]}"#);
        assert!(Router::new(c, &known()).unwrap_err().contains("default"));
        // Unknown names pass when weir does not say which it has (offline tests).
        assert!(Router::new(config(RULES), &[]).is_ok());
        for bad in [
            r#"{"routes": [{"from": "header", "key": "a", "exact": "x", "prefix": "y", "exporters": ["primary"]}]}"#,
            r#"{"routes": [{"from": "header", "key": "a", "regex": "(", "exporters": ["primary"]}]}"#,
            r#"{"routes": [{"from": "header", "key": "a", "exporters": []}]}"#,
            r#"{"routes": [{"from": "header", "key": "", "exporters": ["primary"]}]}"#,
            r#"{"routes": [{"from": "header", "exporters": ["primary"]}]}"#,
            r#"{"routes": [{"from": "tenant", "key": "x", "exporters": ["primary"]}]}"#,
        ] {
            assert!(Router::new(config(bad), &known()).is_err(), "{bad}");
        }
        assert!(serde_json::from_str::<Config>(r#"{"routes": [], "colour": 1}"#).is_err());
        assert!(
            serde_json::from_str::<Config>(
                r#"{"routes": [{"from": "body", "key": "a", "exporters": ["x"]}]}"#
            )
            .is_err()
        );
    }
}
