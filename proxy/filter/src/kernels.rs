//! The `kernels` resource glue: a pattern set handle in a store's table, and the mapping of WIT
//! pattern specs and matches onto `weir-kernels`.

use std::sync::Arc;

use weir_kernels::{PatternSet, PatternSpec};

use crate::batch::bulk::{from_detector, to_rule};
use crate::bindings::v0_2::weir::filter::{kernels as k2, types as t2};

/// What a guest's `pattern-set` handle points at: a compiled set shared through the runtime's cache.
#[derive(Debug, Clone)]
pub struct PatternSetHandle {
    pub(crate) set: Arc<PatternSet>,
}

/// A WIT pattern spec as the kernels take it.
pub(crate) fn spec(s: k2::PatternSpec) -> PatternSpec {
    PatternSpec {
        detectors: s.detectors.into_iter().map(from_detector).collect(),
        value_patterns: s.value_patterns,
        key_names: s.key_names,
        key_patterns: s.key_patterns,
        allow_keys: s.allow_keys,
    }
}

/// The value rules' matches in one string.
pub(crate) fn find(set: &PatternSet, text: &str) -> Vec<k2::PatternMatch> {
    let mut found = Vec::new();
    set.find_values(text, &mut found);
    found
        .into_iter()
        .map(|f| k2::PatternMatch {
            at: t2::Location::Item(0),
            key: String::new(),
            rule: to_rule(f.rule),
            start: f.start,
            end: f.end,
        })
        .collect()
}
