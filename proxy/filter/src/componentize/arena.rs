//! Memory for the WASI preview-1 adapter inside a module whose runtime owns all memory above its data
//! (mainline Go). The adapter has no memory of its own: it takes its stack and state from the main
//! module's `cabi_realloc`, or else grows the memory. Go's allocator assumes every page above its data
//! is its own (so a grown page gets overwritten), and Go cannot be called back while it is inside a WASI
//! call (so its `cabi_realloc` cannot serve the adapter).
//!
//! weir's Go SDK reserves a static array in the module's data instead, starting with [`MAGIC`] and
//! its length. [`give_adapter_an_arena`] finds it and adds a `cabi_realloc_adapter` export, a bump
//! allocator over that array written in plain Wasm, which wit-component gives the adapter in place of
//! the main module's realloc. Go's collector never scans the array (it holds no pointers).

use wasm_encoder::reencode::{Reencode, RoundtripReencoder};
use wasm_encoder::{
    BlockType, CodeSection, ConstExpr, ExportKind, ExportSection, Function, FunctionSection,
    GlobalSection, GlobalType, Instruction, Module, RawSection, TypeSection, ValType,
};
use wasmparser::{
    BinaryReader, CodeSectionReader, DataKind, ExternalKind, Operator, Parser, Payload, TypeRef,
};

use crate::FilterError;

/// The bytes an arena starts with, followed by its length in bytes as eight hexadecimal digits. The
/// Go SDK writes the same (guest-sdk/go/arena.go). No zero byte: Go's linker splits data segments at
/// runs of zeros.
pub const MAGIC: &[u8] = b"weir:adapter-arena:v1:";

/// The name wit-component looks for: a realloc for adapters only.
const EXPORT: &str = "cabi_realloc_adapter";

fn bad(what: impl std::fmt::Display) -> FilterError {
    FilterError::Compile(format!("cannot give the WASI adapter its arena: {what}"))
}

/// Where the arena is: its first free address (past the header, 16-aligned) and its end.
pub(crate) fn find_arena(module: &[u8]) -> Result<Option<(u32, u32)>, FilterError> {
    for payload in Parser::new(0).parse_all(module) {
        let Payload::DataSection(reader) = payload.map_err(bad)? else {
            continue;
        };
        for data in reader {
            let data = data.map_err(bad)?;
            let DataKind::Active { offset_expr, .. } = data.kind else {
                continue;
            };
            let Some(at) = data.data.windows(MAGIC.len()).position(|w| w == MAGIC) else {
                continue;
            };
            let Some(Ok(Operator::I32Const { value: base })) =
                offset_expr.get_operators_reader().into_iter().next()
            else {
                return Err(bad("the arena's data segment has no constant address"));
            };
            let header = at + MAGIC.len();
            let len = data
                .data
                .get(header..header + 8)
                .and_then(|hex| std::str::from_utf8(hex).ok())
                .and_then(|hex| u32::from_str_radix(hex, 16).ok())
                .ok_or_else(|| bad("the arena header has no length"))?;
            let start = (base as u32)
                .checked_add(at as u32)
                .ok_or_else(|| bad("the arena's address overflows"))?;
            let end = start
                .checked_add(len)
                .ok_or_else(|| bad("the arena's length overflows"))?;
            let first = start
                .checked_add(MAGIC.len() as u32 + 8 + 15)
                .ok_or_else(|| bad("the arena's address overflows"))?
                & !15;
            if first >= end {
                return Err(bad("the arena is smaller than its header"));
            }
            return Ok(Some((first, end)));
        }
    }
    Ok(None)
}

/// The bump allocator: `(old, old_size, align, new_size) -> ptr` over `[global bump, end)`. The
/// adapter allocates a few times (its state and stack) and never frees or grows, so a reallocation, an
/// alignment that is not a power of two, or an exhausted arena traps.
fn allocator(bump: u32, end: u32) -> Function {
    use Instruction::*;
    // Parameters: 0 old, 1 old_size, 2 align, 3 new_size. Locals: 4 ptr, 5 next.
    let mut f = Function::new([(2, ValType::I32)]);
    for ins in [
        // A reallocation: the adapter never asks for one.
        LocalGet(0),
        If(BlockType::Empty),
        Unreachable,
        End,
        // align must be a power of two: align == 0 || align & (align - 1) != 0 traps.
        LocalGet(2),
        I32Eqz,
        LocalGet(2),
        LocalGet(2),
        I32Const(1),
        I32Sub,
        I32And,
        I32Or,
        If(BlockType::Empty),
        Unreachable,
        End,
        // ptr = (bump + align - 1) & -align
        GlobalGet(bump),
        LocalGet(2),
        I32Add,
        I32Const(1),
        I32Sub,
        I32Const(0),
        LocalGet(2),
        I32Sub,
        I32And,
        LocalTee(4),
        // next = ptr + new_size; trap past the end, or on overflow.
        LocalGet(3),
        I32Add,
        LocalTee(5),
        I32Const(end as i32),
        I32GtU,
        LocalGet(5),
        LocalGet(4),
        I32LtU,
        I32Or,
        If(BlockType::Empty),
        Unreachable,
        End,
        LocalGet(5),
        GlobalSet(bump),
        LocalGet(4),
        End,
    ] {
        f.instruction(&ins);
    }
    f
}

/// Adds `cabi_realloc_adapter` over the module's arena. `None` when the module has no arena (it is
/// not from weir's Go SDK) or already exports one.
pub fn give_adapter_an_arena(module: &[u8]) -> Result<Option<Vec<u8>>, FilterError> {
    let Some((first, end)) = find_arena(module)? else {
        return Ok(None);
    };
    // The new type, function and global go after every existing one, so no index moves.
    let (mut types, mut imported_funcs, mut funcs, mut imported_globals, mut globals) =
        (0u32, 0u32, 0u32, 0u32, 0u32);
    for payload in Parser::new(0).parse_all(module) {
        match payload.map_err(bad)? {
            // A rec group may hold several types: count types, not groups.
            Payload::TypeSection(r) => {
                types = 0;
                for group in r {
                    types += group.map_err(bad)?.types().len() as u32;
                }
            }
            Payload::ImportSection(r) => {
                for import in r.into_imports() {
                    match import.map_err(bad)?.ty {
                        TypeRef::Func(_) | TypeRef::FuncExact(_) => imported_funcs += 1,
                        TypeRef::Global(_) => imported_globals += 1,
                        _ => {}
                    }
                }
            }
            Payload::FunctionSection(r) => funcs = r.count(),
            Payload::GlobalSection(r) => globals = r.count(),
            Payload::ExportSection(r) => {
                for export in r {
                    if export.map_err(bad)?.name == EXPORT {
                        return Ok(None);
                    }
                }
            }
            _ => {}
        }
    }
    let (new_type, new_func, new_global) =
        (types, imported_funcs + funcs, imported_globals + globals);

    let mut out = Module::new();
    let mut seen = [false; 5]; // type, function, global, export and code sections
    for payload in Parser::new(0).parse_all(module) {
        match payload.map_err(bad)? {
            Payload::TypeSection(r) => {
                let mut s = TypeSection::new();
                RoundtripReencoder
                    .parse_type_section(&mut s, r)
                    .map_err(bad)?;
                s.ty().function(
                    [ValType::I32, ValType::I32, ValType::I32, ValType::I32],
                    [ValType::I32],
                );
                out.section(&s);
                seen[0] = true;
            }
            Payload::FunctionSection(r) => {
                let mut s = FunctionSection::new();
                RoundtripReencoder
                    .parse_function_section(&mut s, r)
                    .map_err(bad)?;
                s.function(new_type);
                out.section(&s);
                seen[1] = true;
            }
            Payload::GlobalSection(r) => {
                let mut s = GlobalSection::new();
                RoundtripReencoder
                    .parse_global_section(&mut s, r)
                    .map_err(bad)?;
                s.global(
                    GlobalType {
                        val_type: ValType::I32,
                        mutable: true,
                        shared: false,
                    },
                    &ConstExpr::i32_const(first as i32),
                );
                out.section(&s);
                seen[2] = true;
            }
            Payload::ExportSection(r) => {
                let mut s = ExportSection::new();
                for export in r {
                    let export = export.map_err(bad)?;
                    let kind = match export.kind {
                        ExternalKind::Func | ExternalKind::FuncExact => ExportKind::Func,
                        ExternalKind::Table => ExportKind::Table,
                        ExternalKind::Memory => ExportKind::Memory,
                        ExternalKind::Global => ExportKind::Global,
                        ExternalKind::Tag => ExportKind::Tag,
                    };
                    s.export(export.name, kind, export.index);
                }
                s.export(EXPORT, ExportKind::Func, new_func);
                out.section(&s);
                seen[3] = true;
            }
            Payload::CodeSectionStart { range, .. } => {
                // The bodies as they are, then the allocator.
                let mut code = CodeSection::new();
                let reader =
                    CodeSectionReader::new(BinaryReader::new(&module[range.clone()], range.start))
                        .map_err(bad)?;
                for body in reader {
                    code.raw(&module[body.map_err(bad)?.range()]);
                }
                code.function(&allocator(new_global, end));
                out.section(&code);
                seen[4] = true;
            }
            Payload::CodeSectionEntry(_) | Payload::End(_) | Payload::Version { .. } => {}
            other => {
                if let Some((id, range)) = other.as_section() {
                    out.section(&RawSection {
                        id,
                        data: &module[range],
                    });
                }
            }
        }
    }
    if seen != [true; 5] {
        return Err(bad(
            "the module lacks a type, function, global, export or code section",
        ));
    }
    Ok(Some(out.finish()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use wasm_encoder::{DataSection, MemorySection, MemoryType};

    /// A module shaped like Go's: a memory, a data segment at `base` holding an arena of `len` bytes
    /// (when `len` is given), a global, a function and an export.
    fn module(base: u32, len: Option<u32>) -> Vec<u8> {
        let mut m = Module::new();
        let mut types = TypeSection::new();
        types.ty().function([], [ValType::I32]);
        m.section(&types);
        let mut funcs = FunctionSection::new();
        funcs.function(0);
        m.section(&funcs);
        let mut memories = MemorySection::new();
        memories.memory(MemoryType {
            minimum: 16,
            maximum: None,
            memory64: false,
            shared: false,
            page_size_log2: None,
        });
        m.section(&memories);
        let mut globals = GlobalSection::new();
        globals.global(
            GlobalType {
                val_type: ValType::I32,
                mutable: true,
                shared: false,
            },
            &ConstExpr::i32_const(7),
        );
        m.section(&globals);
        let mut exports = ExportSection::new();
        exports.export("seven", ExportKind::Func, 0);
        exports.export("memory", ExportKind::Memory, 0);
        m.section(&exports);
        let mut code = CodeSection::new();
        let mut f = Function::new([]);
        f.instruction(&Instruction::GlobalGet(0));
        f.instruction(&Instruction::End);
        code.function(&f);
        m.section(&code);
        let mut data = DataSection::new();
        let mut bytes = b"some other data ".to_vec();
        if let Some(len) = len {
            bytes.extend_from_slice(MAGIC);
            bytes.extend_from_slice(format!("{len:08x}").as_bytes());
        }
        data.active(0, &ConstExpr::i32_const(base as i32), bytes);
        m.section(&data);
        m.finish()
    }

    #[test]
    fn a_module_without_an_arena_is_left_alone() {
        assert!(
            give_adapter_an_arena(&module(1024, None))
                .unwrap()
                .is_none()
        );
    }

    #[test]
    fn the_arena_is_found_past_its_header() {
        // The header starts 16 bytes into the segment at 1024 and is 30 bytes long: 1070, aligned.
        assert_eq!(
            find_arena(&module(1024, Some(4096))).unwrap(),
            Some((1072, 1024 + 16 + 4096))
        );
        let err = give_adapter_an_arena(&module(1024, Some(8))).unwrap_err();
        assert!(err.to_string().contains("smaller than its header"), "{err}");
    }

    #[test]
    fn the_allocator_bumps_through_the_arena_and_traps_past_its_end() {
        use wasmtime::{Engine, Instance, Store};
        let bytes = give_adapter_an_arena(&module(1024, Some(4096)))
            .unwrap()
            .expect("an arena");
        wasmparser::Validator::new().validate_all(&bytes).unwrap();
        // Nothing else moved, and a second pass finds the export already there.
        assert!(give_adapter_an_arena(&bytes).unwrap().is_none());

        let engine = Engine::default();
        let mut store = Store::new(&engine, ());
        let module = wasmtime::Module::new(&engine, &bytes).unwrap();
        let instance = Instance::new(&mut store, &module, &[]).unwrap();
        let seven = instance
            .get_typed_func::<(), i32>(&mut store, "seven")
            .unwrap();
        assert_eq!(seven.call(&mut store, ()).unwrap(), 7);
        let alloc = instance
            .get_typed_func::<(i32, i32, i32, i32), i32>(&mut store, EXPORT)
            .unwrap();
        let (first, end) = (1072, 1024 + 16 + 4096);
        assert_eq!(alloc.call(&mut store, (0, 0, 8, 100)).unwrap(), first);
        // Aligned up from first + 100.
        assert_eq!(alloc.call(&mut store, (0, 0, 16, 10)).unwrap(), first + 112);
        assert_eq!(alloc.call(&mut store, (0, 0, 1, 3)).unwrap(), first + 122);
        // A reallocation, an alignment that is not a power of two, and a request past the end, trap.
        assert!(alloc.call(&mut store, (first, 100, 8, 200)).is_err());
        let mut store = Store::new(&engine, ());
        let instance = Instance::new(&mut store, &module, &[]).unwrap();
        let alloc = instance
            .get_typed_func::<(i32, i32, i32, i32), i32>(&mut store, EXPORT)
            .unwrap();
        assert!(alloc.call(&mut store, (0, 0, 0, 8)).is_err());
        assert!(alloc.call(&mut store, (0, 0, 6, 8)).is_err());
        let mut store = Store::new(&engine, ());
        let instance = Instance::new(&mut store, &module, &[]).unwrap();
        let alloc = instance
            .get_typed_func::<(i32, i32, i32, i32), i32>(&mut store, EXPORT)
            .unwrap();
        assert_eq!(
            alloc.call(&mut store, (0, 0, 4, end - first)).unwrap(),
            first
        );
        assert!(alloc.call(&mut store, (0, 0, 1, 1)).is_err());
    }
}
