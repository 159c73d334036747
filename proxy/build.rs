//! Embeds the filter examples, the guest SDKs and weir's WIT into the `weir` binary, for
//! `weir filter new` (proxy/src/cmd/scaffold.rs): the examples in examples/filters/ are the templates,
//! so a new project starts from code that CI builds and tests.

use std::path::{Path, PathBuf};

/// Groups of files: name, directory (from the workspace root).
const GROUPS: &[(&str, &str)] = &[
    ("rust", "examples/filters/rust"),
    ("go", "examples/filters/go"),
    ("js", "examples/filters/js"),
    ("ts", "examples/filters/ts"),
    ("python", "examples/filters/python"),
    ("c", "examples/filters/c"),
    ("zig", "examples/filters/zig"),
    ("testdata", "examples/filters/testdata"),
    ("sdk-rust", "guest-sdk"),
    ("sdk-go", "guest-sdk/go"),
    ("sdk-ts", "guest-sdk/ts"),
    ("sdk-python", "guest-sdk/python"),
    ("wit", "wit/0.3.1"),
];

/// Build output, and the other SDKs inside guest-sdk/.
const SKIP: &[&str] = &[
    "build",
    "target",
    "node_modules",
    "__pycache__",
    "Cargo.lock",
    "go",
    "ts",
    "python",
];

fn walk(root: &Path, dir: &Path, out: &mut Vec<PathBuf>) {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.expect("directory entry").path())
        .collect();
    entries.sort();
    for path in entries {
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        // Only a group's own top level skips the other SDKs' folders inside guest-sdk/.
        if SKIP.contains(&name) && (dir == root || !matches!(name, "go" | "ts" | "python")) {
            continue;
        }
        if path.is_dir() {
            walk(root, &path, out);
        } else {
            out.push(path);
        }
    }
}

fn main() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut table = String::from(
        "/// Files for `weir filter new`: group, path in the group, contents.\n\
         pub(crate) static TEMPLATES: &[(&str, &str, &[u8])] = &[\n",
    );
    for (group, dir) in GROUPS {
        // Files only: a directory would be scanned recursively, build output and all, and an example
        // built in the tree would rebuild weir. A new template file: touch this script.
        let dir = root.join(dir);
        let mut files = Vec::new();
        walk(&dir, &dir, &mut files);
        for file in files {
            println!("cargo:rerun-if-changed={}", file.display());
            let rel = file.strip_prefix(&dir).expect("inside its group");
            let abs = file.canonicalize().expect("a real file");
            table.push_str(&format!(
                "    ({group:?}, {:?}, include_bytes!({:?})),\n",
                rel.to_string_lossy(),
                abs.to_string_lossy()
            ));
        }
    }
    table.push_str("];\n");
    let out = PathBuf::from(std::env::var("OUT_DIR").expect("OUT_DIR")).join("templates.rs");
    std::fs::write(out, table).expect("writing templates.rs");
}
