//! The `weir` command's subcommands, one module each: its arguments (beyond what `main.rs` parses)
//! and its `main`, which returns the process's exit code. Part of the binary only: the library knows
//! nothing of the command line.

pub(crate) mod compile_helper;
pub(crate) mod dead_letter;
pub(crate) mod filter;
pub(crate) mod keygen;
pub(crate) mod run;
pub(crate) mod scaffold;
pub(crate) mod validate;

/// An error and its causes on one line, as `{:#}` prints them, without the repeats: weir's typed
/// errors put their cause in their own message (`filter sampler: cannot read module x: No such
/// file`), so `{:#}` alone printed each cause twice or three times. A cause already in the line
/// is left out; one that adds something is appended.
pub(crate) fn report(e: &anyhow::Error) -> String {
    let mut line = e.to_string();
    for cause in e.chain().skip(1) {
        let text = cause.to_string();
        if !line.contains(&text) {
            line.push_str(": ");
            line.push_str(&text);
        }
    }
    line
}

#[cfg(test)]
mod tests {
    use super::report;

    #[derive(Debug, thiserror::Error)]
    #[error("cannot read module {path}: {source}")]
    struct Read {
        path: String,
        source: std::io::Error,
    }

    #[test]
    fn a_cause_is_printed_once() {
        let io = std::io::Error::new(std::io::ErrorKind::NotFound, "No such file");
        let e = anyhow::Error::new(Read {
            path: "x.wasm".into(),
            source: io,
        })
        .context("filter sampler");
        assert_eq!(
            format!("{e:#}"),
            "filter sampler: cannot read module x.wasm: No such file: No such file",
            "what `{{:#}}` prints"
        );
        assert_eq!(
            report(&e),
            "filter sampler: cannot read module x.wasm: No such file"
        );
        // Causes that are not in the message are kept, in order.
        let plain = anyhow::anyhow!("disk full")
            .context("writing x")
            .context("saving");
        assert_eq!(report(&plain), "saving: writing x: disk full");
    }
}
