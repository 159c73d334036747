//! `weir filter new` and `weir filter build`: a filter project in one of seven languages, started from
//! weir's own example filter (examples/filters/<lang>, embedded by build.rs), with its build script,
//! weir's WIT, the language's SDK where there is one, and a test input; then built by its `build.sh`.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, bail};

include!(concat!(env!("OUT_DIR"), "/templates.rs"));

/// The languages `weir filter new` writes, as `--lang` takes them.
pub(crate) const LANGUAGES: &[&str] = &["rust", "go", "js", "ts", "python", "c", "zig"];

/// The exit status of a build whose toolchain is missing (`EX_UNAVAILABLE`): every `build.sh` uses
/// it, and `weir filter build` and `weir filter test` pass it on.
pub(crate) const MISSING_TOOLCHAIN: u8 = 69;

/// A build stopped because its toolchain is missing; `build.sh` has said which, and how to install it.
#[derive(Debug, thiserror::Error)]
#[error("{0}: a toolchain is missing (build.sh said which, and how to install it)")]
pub(crate) struct MissingToolchain(pub PathBuf);

fn files(group: &str) -> impl Iterator<Item = (&'static str, &'static [u8])> + '_ {
    TEMPLATES
        .iter()
        .filter(move |(g, _, _)| *g == group)
        .map(|(_, path, bytes)| (*path, *bytes))
}

fn text(bytes: &[u8]) -> anyhow::Result<String> {
    String::from_utf8(bytes.to_vec()).context("a template is not UTF-8")
}

/// Names that work as a Rust crate, a Go module, a directory and an npm package.
fn check_name(name: &str) -> anyhow::Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name.starts_with(|c: char| c.is_ascii_lowercase())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_');
    if !ok {
        bail!(
            "filter name {name:?}: use lower-case letters, digits, '-' and '_', starting with a letter"
        );
    }
    // A Go project's module path: `weir` would shadow the SDK's `weir/filter`.
    if name == "weir" {
        bail!("filter name \"weir\" is taken by the Go SDK's module path: choose another");
    }
    Ok(())
}

/// What a project's `.gitignore` holds: every toolchain's output.
const GITIGNORE: &str = "build/\ntarget/\nnode_modules/\n__pycache__/\n";

/// Writes project `name` in language `lang` into `dir` (which must not exist, or be empty). Returns
/// the files written, relative to `dir`.
pub(crate) fn new(name: &str, lang: &str, dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    check_name(name)?;
    if !LANGUAGES.contains(&lang) {
        bail!("--lang {lang}: one of {}", LANGUAGES.join(", "));
    }
    if dir.exists()
        && std::fs::read_dir(dir)
            .with_context(|| format!("reading {}", dir.display()))?
            .next()
            .is_some()
    {
        bail!(
            "{} already exists and is not empty: choose another directory",
            dir.display()
        );
    }
    let mut out: Vec<(PathBuf, Vec<u8>)> = Vec::new();
    for (path, bytes) in files(lang) {
        let bytes = match path {
            "Cargo.toml" => text(bytes)?
                .replace("name = \"example-filter\"", &format!("name = \"{name}\""))
                .replace("path = \"../../../guest-sdk\"", "path = \"weir-guest-sdk\"")
                .into_bytes(),
            "go.mod" => text(bytes)?
                .replace("module example/filter", &format!("module {name}"))
                .replace("=> ../../../guest-sdk/go", "=> ./weir")
                .replace(
                    "the repository's copy (`weir filter new` points this at the project's own)",
                    "the copy `weir filter new` wrote into weir/",
                )
                .into_bytes(),
            "package.json" => text(bytes)?
                .replace("weir-example-filter-js", name)
                .replace("weir-example-filter-ts", name)
                .into_bytes(),
            _ => bytes.to_vec(),
        };
        out.push((PathBuf::from(path), bytes));
    }
    // The language's SDK, where it has one beside the example.
    match lang {
        "rust" => {
            for (path, bytes) in files("sdk-rust") {
                let bytes = if path.ends_with("lib.rs") {
                    text(bytes)?
                        .replace("path: \"../wit/0.3.1\"", "path: \"../wit\"")
                        .into_bytes()
                } else {
                    bytes.to_vec()
                };
                out.push((Path::new("weir-guest-sdk").join(path), bytes));
            }
        }
        "go" => {
            for (path, bytes) in files("sdk-go") {
                out.push((Path::new("weir").join(path), bytes.to_vec()));
            }
        }
        "ts" => {
            for (path, bytes) in files("sdk-ts") {
                out.push((Path::new("weir").join(path), bytes.to_vec()));
            }
        }
        "python" => {
            for (path, bytes) in files("sdk-python") {
                out.push((PathBuf::from(path), bytes.to_vec()));
            }
        }
        _ => {}
    }
    for (path, bytes) in files("wit") {
        out.push((Path::new("wit").join(path), bytes.to_vec()));
    }
    for (path, bytes) in files("testdata") {
        let path = match path {
            "spans.json" => "input.json",
            other => other,
        };
        out.push((Path::new("test").join(path), bytes.to_vec()));
    }
    out.push((PathBuf::from(".gitignore"), GITIGNORE.as_bytes().to_vec()));

    let mut written = Vec::new();
    for (path, bytes) in out {
        let full = dir.join(&path);
        if let Some(parent) = full.parent() {
            std::fs::create_dir_all(parent)
                .with_context(|| format!("creating {}", parent.display()))?;
        }
        std::fs::write(&full, bytes).with_context(|| format!("writing {}", full.display()))?;
        #[cfg(unix)]
        if path.extension().is_some_and(|e| e == "sh") {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&full, std::fs::Permissions::from_mode(0o755))
                .with_context(|| format!("making {} executable", full.display()))?;
        }
        written.push(path);
    }
    Ok(written)
}

/// Builds the project in `dir` with its `build.sh`, which prints the module's path last. The build
/// sees this `weir` as `$WEIR` (Go's build calls `weir filter componentize`).
pub(crate) fn build(dir: &Path) -> anyhow::Result<PathBuf> {
    let script = dir.join("build.sh");
    if !script.is_file() {
        bail!(
            "{} has no build.sh: not a filter project (`weir filter new` makes one)",
            dir.display()
        );
    }
    let weir = std::env::current_exe().context("finding the weir executable")?;
    let output = Command::new("bash")
        .arg("build.sh")
        .current_dir(dir)
        .env("WEIR", &weir)
        .stderr(std::process::Stdio::inherit())
        .output()
        .with_context(|| format!("running {}", script.display()))?;
    match output.status.code() {
        Some(0) => {}
        Some(code) if code == i32::from(MISSING_TOOLCHAIN) => {
            return Err(MissingToolchain(dir.to_path_buf()).into());
        }
        _ => bail!("{} failed ({})", script.display(), output.status),
    }
    let stdout = String::from_utf8_lossy(&output.stdout);
    let module = stdout
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .map(|l| PathBuf::from(l.trim()))
        .filter(|p| p.is_file())
        .with_context(|| format!("{} printed no module path last", script.display()))?;
    Ok(module)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_language_has_its_example_and_build_script() {
        for lang in LANGUAGES {
            let paths: Vec<_> = files(lang).map(|(p, _)| p).collect();
            assert!(paths.contains(&"build.sh"), "{lang}: {paths:?}");
            assert!(paths.contains(&"README.md"), "{lang}: {paths:?}");
            assert!(
                !paths.iter().any(|p| p.starts_with("build/")),
                "{lang}: build output embedded: {paths:?}"
            );
        }
        assert!(files("wit").any(|(p, _)| p == "filter.wit"));
        assert!(files("sdk-go").any(|(p, _)| p == "filter.go"));
        assert!(files("sdk-rust").any(|(p, _)| p == "src/lib.rs"));
        assert!(!files("sdk-rust").any(|(p, _)| p.starts_with("go/")));
    }

    #[test]
    fn a_new_project_points_at_its_own_copies() {
        let dir = tempfile::tempdir().unwrap();
        let rust = dir.path().join("rusty");
        new("rusty", "rust", &rust).unwrap();
        let cargo = std::fs::read_to_string(rust.join("Cargo.toml")).unwrap();
        assert!(cargo.contains("name = \"rusty\""), "{cargo}");
        assert!(cargo.contains("path = \"weir-guest-sdk\""), "{cargo}");
        let sdk = std::fs::read_to_string(rust.join("weir-guest-sdk/src/lib.rs")).unwrap();
        assert!(sdk.contains("path: \"../wit\""));
        assert!(rust.join("wit/filter.wit").is_file());
        assert!(rust.join("test/input.json").is_file());

        let go = dir.path().join("gopher");
        new("gopher", "go", &go).unwrap();
        let gomod = std::fs::read_to_string(go.join("go.mod")).unwrap();
        assert!(gomod.contains("module gopher"), "{gomod}");
        assert!(gomod.contains("=> ./weir"), "{gomod}");
        assert!(
            go.join("weir/wit/exports/wit_exports/wit_exports.go")
                .is_file()
        );

        // Not over a project, nor with a name a toolchain would refuse, nor in an unknown language.
        let err = new("rusty", "rust", &rust).unwrap_err();
        assert!(err.to_string().contains("not empty"), "{err}");
        let err = new("Bad Name", "c", &dir.path().join("x")).unwrap_err();
        assert!(err.to_string().contains("lower-case"), "{err}");
        let err = new("ok", "cobol", &dir.path().join("y")).unwrap_err();
        assert!(err.to_string().contains("one of rust, go"), "{err}");
    }
}
