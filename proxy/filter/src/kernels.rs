//! The `kernels` resource glue: what a guest's pattern set handle in a store's table points at, and a
//! pattern set's matches in one string (the interface's `find`).

use std::sync::Arc;

use weir_kernels::PatternSet;

use crate::batch::Target;
use crate::batch::bulk::Match;

/// What a guest's `pattern-set` handle points at: a compiled set shared through the runtime's cache.
#[derive(Debug, Clone)]
pub struct PatternSetHandle {
    pub(crate) set: Arc<PatternSet>,
}

/// The value rules' matches in one string, each made by `M::from` (the interface's match type).
pub(crate) fn find<M: From<Match>>(set: &PatternSet, text: &str) -> Vec<M> {
    let mut found = Vec::new();
    set.find_values(text, &mut found);
    found
        .into_iter()
        .map(|f| {
            M::from(Match {
                at: Target::Item(0),
                key: String::new(),
                rule: f.rule,
                start: f.start,
                end: f.end,
            })
        })
        .collect()
}
