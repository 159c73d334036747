//! The `weir` command's subcommands, one module each: its arguments (beyond what `main.rs` parses)
//! and its `main`, which returns the process's exit code. Part of the binary only: the library knows
//! nothing of the command line.

pub(crate) mod compile_helper;
pub(crate) mod dead_letter;
pub(crate) mod filter;
pub(crate) mod keygen;
pub(crate) mod run;
pub(crate) mod validate;
