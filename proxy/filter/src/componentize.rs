//! Core modules into components. A wit-bindgen core module carries its world in a `component-type`
//! custom section; [`componentize`] wraps it into a component, with the WASI preview-1 adapter (reactor)
//! when it imports `wasi_snapshot_preview1` (C and Zig built against wasi-libc, Go's `GOOS=wasip1`).
//! [`embed_world`] first writes weir's own world into a module whose toolchain cannot (mainline Go has no
//! way to emit a custom section), for `weir filter componentize`.

use wasi_preview1_component_adapter_provider::{
    WASI_SNAPSHOT_PREVIEW1_ADAPTER_NAME, WASI_SNAPSHOT_PREVIEW1_REACTOR_ADAPTER,
};
use wit_component::StringEncoding;
use wit_parser::Resolve;

use super::FilterError;

mod arena;

/// The interface `embed_world` writes into a module: the newest.
pub const INTERFACE_VERSION: &str = "0.3.1";

/// The WIT of [`INTERFACE_VERSION`].
const FILTER_WIT: &str = include_str!("../../../wit/0.3.1/filter.wit");

/// Core modules start with `\0asm` and version 1; components use a different version/layer.
pub fn is_core_module(bytes: &[u8]) -> bool {
    bytes.len() >= 8 && &bytes[..4] == b"\0asm" && bytes[4..8] == [1, 0, 0, 0]
}

/// Turns a core module carrying a `component-type` section (from wit-bindgen, or [`embed_world`]) into a
/// component. A module that imports WASI preview 1 gets the reactor adapter, which implements it on the
/// WASI preview 2 that weir gives filters; a module that does not, gets no adapter.
///
/// A module from weir's Go SDK carries an arena for the adapter, which is given to it first (see
/// `arena`).
pub fn componentize(module: &[u8]) -> Result<Vec<u8>, FilterError> {
    let with_arena = arena::give_adapter_an_arena(module)?;
    let module = with_arena.as_deref().unwrap_or(module);
    wit_component::ComponentEncoder::default()
        .module(module)
        .and_then(|e| {
            e.adapter(
                WASI_SNAPSHOT_PREVIEW1_ADAPTER_NAME,
                WASI_SNAPSHOT_PREVIEW1_REACTOR_ADAPTER,
            )
        })
        .and_then(|e| e.validate(true).encode())
        .map_err(|e| {
            FilterError::Compile(format!(
                "not a weir filter component, nor a core module built with wit-bindgen: {e:#}"
            ))
        })
}

/// Whether a core module already carries a `component-type` custom section.
pub fn has_world(module: &[u8]) -> bool {
    wasmparser::Parser::new(0).parse_all(module).any(|p| {
        matches!(p, Ok(wasmparser::Payload::CustomSection(c)) if c.name().starts_with("component-type"))
    })
}

/// Which of weir's worlds a module's exports ask for: `profiles-filter` when it exports
/// `process-profiles`, else `filter`.
fn world_of(module: &[u8]) -> Result<&'static str, FilterError> {
    for payload in wasmparser::Parser::new(0).parse_all(module) {
        let payload =
            payload.map_err(|e| FilterError::Compile(format!("not a Wasm module: {e}")))?;
        if let wasmparser::Payload::ExportSection(exports) = payload {
            for export in exports {
                let export =
                    export.map_err(|e| FilterError::Compile(format!("bad export section: {e}")))?;
                if export.name == "process-profiles" {
                    return Ok("profiles-filter");
                }
            }
        }
    }
    Ok("filter")
}

/// Writes weir's world (interface [`INTERFACE_VERSION`]) into a core module that implements it by the
/// canonical ABI's names but has no `component-type` section. A module that has one is returned as is.
pub fn embed_world(module: &[u8]) -> Result<Vec<u8>, FilterError> {
    if !is_core_module(module) {
        return Err(FilterError::Compile(
            "not a core Wasm module (already a component?)".into(),
        ));
    }
    if has_world(module) {
        return Ok(module.to_vec());
    }
    let mut resolve = Resolve::default();
    let package = resolve
        .push_str("filter.wit", FILTER_WIT)
        .map_err(|e| FilterError::Setup(format!("weir's own WIT: {e:#}")))?;
    let world = resolve
        .select_world(&[package], Some(world_of(module)?))
        .map_err(|e| FilterError::Setup(format!("weir's own WIT: {e:#}")))?;
    let mut bytes = module.to_vec();
    wit_component::embed_component_metadata(&mut bytes, &resolve, world, StringEncoding::UTF8)
        .map_err(|e| FilterError::Compile(format!("cannot embed weir's world: {e:#}")))?;
    Ok(bytes)
}
