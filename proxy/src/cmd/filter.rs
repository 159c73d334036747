//! `weir filter`: pushes, lists, rolls back and removes the filters of a running weir through its admin
//! API, signs modules, and runs a filter offline on a batch (`weir filter test`).

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::Subcommand;
use weir::config::LogFormat;

#[derive(Debug, Subcommand)]
pub(crate) enum FilterCommand {
    /// Upload a module and add or replace filter NAME with it; it is validated before it goes live.
    Push {
        /// The filter's name in its pipeline.
        name: String,
        /// The .wasm file (component or wit-bindgen core module).
        file: PathBuf,
        /// Filter configuration: JSON text, or @FILE to read it from a file.
        #[arg(long)]
        config: Option<String>,
        /// The pipeline.
        #[arg(long, default_value = "traces")]
        pipeline: String,
        /// fail-open or fail-closed.
        #[arg(long, default_value = "fail-open")]
        on_error: String,
        /// Time one call may take, e.g. 50ms.
        #[arg(long)]
        deadline: Option<String>,
        /// Memory cap per instance, in bytes.
        #[arg(long)]
        memory: Option<usize>,
        /// The module's signature file [default: FILE.sig, sent when it exists].
        #[arg(long)]
        signature: Option<PathBuf>,
        #[command(flatten)]
        admin: AdminArgs,
    },
    /// Sign a module with a private key from `weir keygen`: writes FILE.sig, which `weir filter push`
    /// sends and weir checks against `module_signing.trusted_keys` (next to a module named in the
    /// configuration file, weir checks it at start).
    Sign {
        /// The private key (PREFIX.key).
        #[arg(long)]
        key: PathBuf,
        /// The .wasm file.
        file: PathBuf,
    },
    /// List the active filters with version, sha256, state and statistics.
    List {
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        admin: AdminArgs,
    },
    /// Re-activate the previous version of filter NAME.
    Rollback {
        /// The filter's name.
        name: String,
        /// The pipeline.
        #[arg(long, default_value = "traces")]
        pipeline: String,
        #[command(flatten)]
        admin: AdminArgs,
    },
    /// Remove filter NAME from its pipeline.
    Rm {
        /// The filter's name.
        name: String,
        /// The pipeline.
        #[arg(long, default_value = "traces")]
        pipeline: String,
        #[command(flatten)]
        admin: AdminArgs,
    },
    /// Make a core module a component: weir's world is embedded when the module has none (Go's
    /// toolchain cannot write one), and a module that imports WASI preview 1 gets the adapter.
    Componentize {
        /// The core module.
        file: PathBuf,
        /// Where to write the component.
        #[arg(short, long)]
        output: PathBuf,
    },
    /// Start a filter project in DIR (default ./NAME): weir's example filter in that language, its
    /// build script, weir's WIT, the language's SDK and a test input.
    New {
        /// The filter's name (lower-case letters, digits, '-' and '_').
        name: String,
        /// rust, go, js, ts, python, c or zig.
        #[arg(long)]
        lang: String,
        /// Where to write it.
        #[arg(long)]
        dir: Option<PathBuf>,
    },
    /// Build the filter project in DIR with its build.sh; prints the module's path. Exits with 69
    /// when the language's toolchain is missing (build.sh says how to install it).
    Build {
        /// The project.
        #[arg(default_value = ".")]
        dir: PathBuf,
    },
    /// Run a filter offline on an OTLP/JSON batch and print what it did. Given a project directory
    /// (the default), builds it first and feeds it test/input.json with test/config.json.
    Test {
        /// A .wasm file, or a filter project's directory.
        #[arg(default_value = ".")]
        file: PathBuf,
        /// OTLP/JSON request to feed it [default for a project: test/input.json].
        #[arg(long)]
        input: Option<PathBuf>,
        /// Filter configuration: JSON text, or @FILE.
        #[arg(long)]
        config: Option<String>,
        /// The signal of the input.
        #[arg(long, default_value = "traces")]
        signal: String,
    },
}

#[derive(Debug, clap::Args)]
pub(crate) struct AdminArgs {
    /// weir's admin API.
    #[arg(long, default_value = "http://127.0.0.1:9901", env = "WEIR_ADMIN")]
    admin: String,
    /// The admin token. Default, for a loopback --admin URL: the one the weir on that port made at
    /// start (its file under $XDG_RUNTIME_DIR/weir/ or /tmp/weir-UID/), when it made one.
    #[arg(long, env = "WEIR_TOKEN")]
    token: Option<String>,
    /// CA bundle an https:// admin API's certificate is verified against (default: system roots).
    #[arg(long, env = "WEIR_ADMIN_CA")]
    admin_ca: Option<PathBuf>,
    /// Client certificate for an admin API that takes mTLS identities (with --admin-key).
    #[arg(long, env = "WEIR_ADMIN_CERT", requires = "admin_key")]
    admin_cert: Option<PathBuf>,
    /// The client certificate's key.
    #[arg(long, env = "WEIR_ADMIN_KEY", requires = "admin_cert")]
    admin_key: Option<PathBuf>,
}

impl AdminArgs {
    /// A client of the admin API these arguments name.
    fn client(self) -> anyhow::Result<weir::admin::client::AdminClient> {
        let tls = (self.admin_ca.is_some() || self.admin_cert.is_some()).then(|| {
            weir::config::ClientTlsConfig {
                ca: self.admin_ca.clone(),
                cert: self.admin_cert.clone(),
                key: self.admin_key.clone(),
                ..Default::default()
            }
        });
        Ok(
            weir::admin::client::AdminClient::new(&self.admin, self.token)
                .with_tls(tls.as_ref())?,
        )
    }
}

/// Exits with 1, saying why, when the command fails.
pub(crate) fn main(cmd: FilterCommand) -> ExitCode {
    // Filters' own log lines and prints go to stderr, so `filter test` shows them.
    weir::telemetry::init_logging(LogFormat::Text, "info");
    match filter_command(cmd) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("weir: {}", super::report(&e));
            if e.downcast_ref::<super::scaffold::MissingToolchain>()
                .is_some()
            {
                ExitCode::from(super::scaffold::MISSING_TOOLCHAIN)
            } else {
                ExitCode::FAILURE
            }
        }
    }
}

/// `--config` as JSON text or `@FILE`.
fn read_config_arg(arg: Option<&str>) -> anyhow::Result<Option<serde_json::Value>> {
    let Some(arg) = arg else { return Ok(None) };
    let text = match arg.strip_prefix('@') {
        Some(path) => std::fs::read_to_string(path).with_context(|| format!("reading {path}"))?,
        None => arg.to_string(),
    };
    // Not JSON: pass it on as a string; the filter decides what it means.
    Ok(Some(
        serde_json::from_str(&text).unwrap_or(serde_json::Value::String(text)),
    ))
}

fn filter_command(cmd: FilterCommand) -> anyhow::Result<()> {
    use http::Method;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the tokio runtime")?;
    match cmd {
        FilterCommand::New { name, lang, dir } => {
            let dir = dir.unwrap_or_else(|| PathBuf::from(&name));
            let written = super::scaffold::new(&name, &lang, &dir)?;
            println!(
                "{}: a {lang} filter project ({} files). Next:\n  weir filter test {}      # builds it, runs it on test/input.json\n  weir filter push {name} {}/build/filter.wasm --config @{}/test/config.json",
                dir.display(),
                written.len(),
                dir.display(),
                dir.display(),
                dir.display(),
            );
            Ok(())
        }
        FilterCommand::Build { dir } => {
            let module = super::scaffold::build(&dir)?;
            println!("{}", module.display());
            Ok(())
        }
        FilterCommand::Test {
            file,
            input,
            config,
            signal,
        } => {
            // A project: build it, and take its test input and config unless told otherwise.
            let (file, input, config) = if file.is_dir() {
                let module = super::scaffold::build(&file)?;
                let input = input.unwrap_or_else(|| file.join("test/input.json"));
                let default_config = file.join("test/config.json");
                let config = config.or_else(|| {
                    default_config
                        .is_file()
                        .then(|| format!("@{}", default_config.display()))
                });
                (module, input, config)
            } else {
                let input = input.context("--input: the OTLP/JSON request to feed the filter")?;
                (file, input, config)
            };
            let module =
                std::fs::read(&file).with_context(|| format!("reading {}", file.display()))?;
            let input =
                std::fs::read(&input).with_context(|| format!("reading {}", input.display()))?;
            let signal = weir::control::parse_signal(&signal)
                .context("--signal: traces, metrics, logs or profiles")?;
            let config = match read_config_arg(config.as_deref())? {
                None => String::new(),
                Some(serde_json::Value::String(s)) => s,
                Some(v) => v.to_string(),
            };
            let report =
                weir::filter::offline::run(&module, &config, signal, &input, Default::default())?;
            println!("{}", serde_json::to_string_pretty(&report)?);
            Ok(())
        }
        FilterCommand::Componentize { file, output } => {
            use weir::filter::componentize;
            let module =
                std::fs::read(&file).with_context(|| format!("reading {}", file.display()))?;
            if !componentize::is_core_module(&module) {
                anyhow::bail!("{} is not a core Wasm module", file.display());
            }
            let embedded = !componentize::has_world(&module);
            let component = componentize::componentize(&componentize::embed_world(&module)?)?;
            std::fs::write(&output, &component)
                .with_context(|| format!("writing {}", output.display()))?;
            println!(
                "{}: {} bytes{}",
                output.display(),
                component.len(),
                if embedded {
                    format!(
                        " (weir's world {} embedded)",
                        componentize::INTERFACE_VERSION
                    )
                } else {
                    String::new()
                }
            );
            Ok(())
        }
        FilterCommand::Push {
            name,
            file,
            config,
            pipeline,
            on_error,
            deadline,
            memory,
            signature,
            admin,
        } => runtime.block_on(async {
            let client = admin.client()?;
            let bytes =
                std::fs::read(&file).with_context(|| format!("reading {}", file.display()))?;
            let signature = match signature {
                Some(path) => Some(
                    std::fs::read_to_string(&path)
                        .with_context(|| format!("reading {}", path.display()))?,
                ),
                None => std::fs::read_to_string(weir::signing::signature_path(&file)).ok(),
            };
            let headers: Vec<(&str, &str)> = signature
                .iter()
                .map(|s| (weir::signing::SIGNATURE_HEADER, s.trim()))
                .collect();
            let started = std::time::Instant::now();
            let uploaded = client
                .call_with_headers(
                    Method::POST,
                    "/v1/modules",
                    "application/wasm",
                    &headers,
                    bytes,
                )
                .await?;
            let sha256 = uploaded["sha256"].as_str().unwrap_or_default().to_string();
            let mut limits = serde_json::Map::new();
            if let Some(d) = deadline {
                limits.insert("deadline".into(), d.into());
            }
            if let Some(m) = memory {
                limits.insert("memory".into(), m.into());
            }
            let mut request = serde_json::json!({
                "module": sha256,
                "on_error": on_error,
                "limits": limits,
            });
            if let Some(c) = read_config_arg(config.as_deref())? {
                request["config"] = c;
            }
            let info = client
                .call(
                    Method::PUT,
                    &format!("/v1/pipelines/{pipeline}/filters/{name}"),
                    "application/json",
                    serde_json::to_vec(&request)?,
                )
                .await?;
            println!(
                "{pipeline}/{name}: version {} active ({}), sha256 {} in {:?}",
                info["version"],
                info["state"].as_str().unwrap_or("?"),
                sha256,
                started.elapsed()
            );
            Ok(())
        }),
        FilterCommand::Sign { key, file } => {
            let private = std::fs::read_to_string(&key)
                .with_context(|| format!("reading {}", key.display()))?;
            let bytes =
                std::fs::read(&file).with_context(|| format!("reading {}", file.display()))?;
            let line = weir::signing::sign(&private, &bytes)?;
            let out = weir::signing::signature_path(&file);
            std::fs::write(&out, format!("{line}\n"))
                .with_context(|| format!("writing {}", out.display()))?;
            println!("signed {}: {}", file.display(), out.display());
            Ok(())
        }
        FilterCommand::List { json, admin } => runtime.block_on(async {
            let client = admin.client()?;
            let v = client
                .call(Method::GET, "/v1/filters", "application/json", Vec::new())
                .await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&v)?);
                return Ok(());
            }
            println!(
                "{:<8} {:<20} {:>7} {:<12} {:<14} {:>10} {:>8} {:>10} {:<12}  sha256",
                "PIPELINE",
                "NAME",
                "VERSION",
                "STATE",
                "ON_ERROR",
                "CALLS",
                "ERRORS",
                "DROPPED",
                "SIGNED_BY"
            );
            for f in v["filters"].as_array().into_iter().flatten() {
                // A quarantine with nothing to roll back to says when the filter is tried again.
                let state = match f["retry_in_ms"].as_u64() {
                    Some(ms) => format!("quarantined, retry in {:.0}s", (ms as f64 / 1e3).ceil()),
                    None => f["state"].as_str().unwrap_or("").to_string(),
                };
                println!(
                    "{:<8} {:<20} {:>7} {:<12} {:<14} {:>10} {:>8} {:>10} {:<12}  {}",
                    f["pipeline"].as_str().unwrap_or(""),
                    f["name"].as_str().unwrap_or(""),
                    f["version"],
                    state,
                    f["on_error"].as_str().unwrap_or(""),
                    f["stats"]["calls"],
                    f["stats"]["errors"],
                    f["stats"]["items_dropped"],
                    f["signed_by"].as_str().unwrap_or("-"),
                    f["sha256"].as_str().unwrap_or(""),
                );
            }
            Ok(())
        }),
        FilterCommand::Rollback {
            name,
            pipeline,
            admin,
        } => runtime.block_on(async {
            let client = admin.client()?;
            let info = client
                .call(
                    Method::POST,
                    &format!("/v1/pipelines/{pipeline}/filters/{name}/rollback"),
                    "application/json",
                    Vec::new(),
                )
                .await?;
            println!(
                "{pipeline}/{name}: rolled back to version {}, sha256 {}",
                info["version"],
                info["sha256"].as_str().unwrap_or("")
            );
            Ok(())
        }),
        FilterCommand::Rm {
            name,
            pipeline,
            admin,
        } => runtime.block_on(async {
            let client = admin.client()?;
            client
                .call(
                    Method::DELETE,
                    &format!("/v1/pipelines/{pipeline}/filters/{name}"),
                    "application/json",
                    Vec::new(),
                )
                .await?;
            println!("{pipeline}/{name}: removed");
            Ok(())
        }),
    }
}
