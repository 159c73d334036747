//! `filterbench`: what Wasm filters cost, measured in-process on weir's own filter runtime.
//!
//! Reports, for batches of realistic spans (the load generator's payloads): the per-batch cost of a
//! chain of three noop filters against no chain; the per-span cost of a trace-id-reading filter (one
//! host call per span, and bulk), of an attribute-rewriting filter and of each reference filter
//! (sampler, redactor, router) and the batch cost of the three in one chain; the time to create and
//! initialize an instance; and the time from push to active (compile, validate, swap). Filters come
//! from `target/wasm` (`bash filters/build.sh`).
//!
//! `cargo run --release -p weir-bench --bin filterbench -- [--spans 100] [--iterations 2000] [--mix secrets]`

#[allow(dead_code)]
#[path = "payload.rs"]
mod payload;
#[allow(dead_code)]
#[path = "procstat.rs"]
mod procstat;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use clap::Parser;
use weir::config::{FilterLimits, OnError};
use weir::control::{Manager, VersionSpec};
use weir::filter::{Chain, FilterSpec, LoadedFilter, PoolSizing, Runtime};
use weir::pipeline::{Pipeline, Pipelines};
use weir::telemetry::Metrics;
use weir_core::{Batch, Payload, RequestContext, Signal};

#[derive(Debug, Parser)]
struct Args {
    /// Spans per batch.
    #[arg(long, default_value_t = 100)]
    spans: usize,
    /// Only time the validating walk, for this many batches (to profile it).
    #[arg(long)]
    walk_only: Option<usize>,
    /// Only time this reference filter (`sampler`, `redactor` or `router`), or the redactor's pattern
    /// scan natively (`scan`), to profile it: with
    /// `WEIR_WASM_PERFMAP=1` under `perf record`, the report names the guest's functions.
    #[arg(long)]
    only: Option<String>,
    /// Batches per measurement (bounded: the whole run stays under a minute on a laptop).
    #[arg(long, default_value_t = 2000)]
    iterations: usize,
    /// Folder of the built filters.
    #[arg(long, default_value = "target/wasm")]
    wasm: PathBuf,
    /// What the spans carry: `plain` (few secrets) or `secrets` (seven of ten attributes are
    /// secrets the redactor masks).
    #[arg(long, value_enum, default_value_t = payload::Mix::Plain)]
    mix: payload::Mix,
    /// Only measure these builds of the example filter (examples/filters/), as LANGUAGE=MODULE, e.g.
    /// `--language go=examples/filters/go/build/filter.wasm`: module size, compile time, instance
    /// creation, per-span cost, memory per instance and resident memory added.
    #[arg(long, value_parser = parse_language)]
    language: Vec<(String, PathBuf)>,
}

fn parse_language(arg: &str) -> Result<(String, PathBuf), String> {
    let (name, path) = arg
        .split_once('=')
        .ok_or_else(|| format!("{arg}: expected LANGUAGE=MODULE"))?;
    Ok((name.to_string(), PathBuf::from(path)))
}

struct Bench {
    runtime: Arc<Runtime>,
    metrics: Arc<Metrics>,
    wasm: PathBuf,
}

impl Bench {
    fn load(&self, module: &str, config: &str) -> Result<Arc<LoadedFilter>> {
        self.load_with(module, config, FilterLimits::default().concurrency)
    }

    fn load_with(
        &self,
        module: &str,
        config: &str,
        concurrency: usize,
    ) -> Result<Arc<LoadedFilter>> {
        let path = self.wasm.join(format!("{module}.wasm"));
        let bytes = std::fs::read(&path)
            .with_context(|| format!("{} (run `bash filters/build.sh`)", path.display()))?;
        let compiled = self.runtime.compile(&bytes)?;
        let spec = FilterSpec {
            name: module.to_string(),
            config: config.to_string(),
            on_error: OnError::FailClosed,
            limits: FilterLimits {
                deadline: Duration::from_secs(1),
                concurrency,
                ..Default::default()
            },
        };
        Ok(LoadedFilter::load(
            self.runtime.clone(),
            spec,
            compiled,
            Signal::Traces,
            self.metrics.clone(),
            None,
        )?)
    }
}

/// The reference filters' configurations, as in examples/edge.yaml (the sampler keeping everything, so
/// that the two after it see every span).
const SAMPLER: &str = r#"{"ratio":1.0}"#;
const REDACTOR: &str = r#"{"block_keys":["password","authorization"]}"#;
const ROUTER: &str = r#"{"routes":[
    {"from":"resource_attribute","key":"service.namespace","exact":"payments","exporters":["archive"]},
    {"from":"header","key":"x-weir-archive","exact":"true","exporters":["archive"]},
    {"from":"attribute","key":"http.route","prefix":"/internal/","exporters":["archive"]}
],"default":["primary"]}"#;

fn batch(payload: &Payload) -> Batch {
    Batch {
        body: weir_core::Body::from_payload(payload.clone()),
        context: RequestContext {
            memory: None,
            peer: None,
            headers: Default::default(),
            tenant: None,
            deadline: Instant::now() + Duration::from_secs(60),
        },
        routing: None,
    }
}

/// Time of `chain.apply` per batch for each of `chains`, the batch clone excluded. The iterations run in
/// rounds, and in each round every chain runs its share in turn; each figure is that chain's fastest
/// round. The machine is shared: a neighbour's burst slows every chain of the rounds it covers rather
/// than one figure, and a figure "over 1 noop" compares rounds of the same moments. The fastest round is
/// what the code costs (as criterion's and hyperfine's minimums are).
fn per_batch_all(
    chains: &[&Chain],
    payloads: &[Payload],
    iterations: usize,
) -> Result<Vec<Duration>> {
    const ROUNDS: usize = 10;
    let per_round = iterations.div_ceil(ROUNDS).max(1);
    let mut best = vec![Duration::MAX; chains.len()];
    for round in 0..ROUNDS {
        for (chain, best) in chains.iter().zip(best.iter_mut()) {
            let mut total = Duration::ZERO;
            for i in 0..per_round {
                let b = batch(&payloads[(round * per_round + i) % payloads.len()]);
                let started = Instant::now();
                let out = chain.apply(b).map_err(|e| anyhow::anyhow!("{e}"))?;
                total += started.elapsed();
                std::hint::black_box(out);
            }
            *best = (*best).min(total / per_round as u32);
        }
    }
    Ok(best)
}

fn main() -> Result<()> {
    let args = Args::parse();
    let payloads: Vec<Payload> = payload::build_mix(args.mix, 16, args.spans, 7)
        .into_iter()
        .map(|p| Payload::decode_protobuf(Signal::Traces, &p.body))
        .collect::<Result<_, _>>()?;
    let metrics = Arc::new(Metrics::new());
    let b = Bench {
        runtime: Arc::new(Runtime::with_sizing(
            None,
            PoolSizing {
                instances: 512,
                memory: 64 << 20,
            },
        )?),
        metrics: metrics.clone(),
        wasm: args.wasm.clone(),
    };
    let n = args.iterations;
    let spans = args.spans as f64;
    if !args.language.is_empty() {
        return languages(&b, &args, &payloads);
    }

    // The work a request does anyway, for scale: decode + encode of one batch.
    let bodies: Vec<Vec<u8>> = payloads.iter().map(Payload::encode_protobuf).collect();
    let started = Instant::now();
    for i in 0..n {
        let p = Payload::decode_protobuf(Signal::Traces, &bodies[i % bodies.len()])?;
        std::hint::black_box(p.encode_protobuf());
    }
    let codec = started.elapsed() / n as u32;
    // What a request without filters does instead: the validating walk of its bytes.
    let started = Instant::now();
    for i in 0..n {
        std::hint::black_box(weir_wire::walk::walk(
            Signal::Traces,
            &bodies[i % bodies.len()],
        )?);
    }
    let walk = started.elapsed() / n as u32;
    if let Some(batches) = args.walk_only {
        let started = Instant::now();
        for i in 0..batches {
            std::hint::black_box(weir_wire::walk::walk(
                Signal::Traces,
                &bodies[i % bodies.len()],
            )?);
        }
        let each = started.elapsed() / batches as u32;
        println!(
            "validating walk: {:.1} µs per batch of {} spans",
            each.as_secs_f64() * 1e6,
            args.spans
        );
        return Ok(());
    }

    if args.only.as_deref() == Some("scan") {
        let t = scan_kernel(&payloads, n)?;
        println!(
            "kernel scan: {:.1} ns/span (native, no Wasm)",
            t.as_secs_f64() * 1e9 / spans
        );
        return Ok(());
    }
    if let Some(name) = args.only.as_deref() {
        let config = match name {
            "sampler" => SAMPLER,
            "redactor" => REDACTOR,
            "router" => ROUTER,
            other => anyhow::bail!("--only: no reference filter `{other}`"),
        };
        let noop = Chain::new(vec![b.load("noop", "")?]);
        let filter = Chain::new(vec![b.load(name, config)?]);
        let [one_noop, t] = per_batch_all(&[&noop, &filter], &payloads, n)?[..] else {
            unreachable!()
        };
        println!(
            "{name}: {:.1} ns/span (over 1 noop)",
            (t.as_secs_f64() - one_noop.as_secs_f64()) * 1e9 / spans
        );
        return Ok(());
    }

    let noop = b.load("noop", "")?;
    let sampler = b.load("sampler", SAMPLER)?;
    let redactor = b.load("redactor", REDACTOR)?;
    let router = b.load("router", ROUTER)?;
    let chains = [
        Chain::identity(),
        Chain::new(vec![noop.clone(), b.load("noop", "")?, b.load("noop", "")?]),
        Chain::new(vec![noop]),
        Chain::new(vec![b.load("trace-ids", r#"{"bulk":false}"#)?]),
        Chain::new(vec![b.load("trace-ids", r#"{"bulk":true}"#)?]),
        Chain::new(vec![
            b.load("set-attribute", r#"{"key":"edge.zone","value":"eu-1"}"#)?,
        ]),
        Chain::new(vec![sampler.clone()]),
        Chain::new(vec![redactor.clone()]),
        Chain::new(vec![router.clone()]),
        Chain::new(vec![sampler, redactor, router]),
    ];
    let [
        none,
        three_noops,
        one_noop,
        per_call,
        bulk,
        rewrite,
        sampler_t,
        redactor_t,
        router_t,
        edge_t,
    ] = per_batch_all(&chains.iter().collect::<Vec<_>>(), &payloads, n)?[..]
    else {
        unreachable!("one figure per chain")
    };

    // The kernels, natively: the redactor's pattern set over the batch (`scan_kernel`); SHA-256 of
    // a 64-byte value.
    let scan_kernel = scan_kernel(&payloads, n)?;
    let value = [7u8; 64];
    let started = Instant::now();
    for _ in 0..n * 100 {
        std::hint::black_box(weir_kernels::sha256(std::hint::black_box(&value)));
    }
    let sha_kernel = started.elapsed() / (n as u32 * 100);

    // Instance creation: instantiate from the InstancePre (pooling allocator, CoW image) + init.
    let f = b.load_with("noop", "", 256)?;
    let rounds = 200;
    let started = Instant::now();
    for _ in 0..rounds {
        f.prewarm().map_err(|e| anyhow::anyhow!("{e}"))?;
    }
    let instance = started.elapsed() / rounds;

    // Push to active through the control plane: upload (compile, cold) and put (validate + swap).
    let mut pipelines = Pipelines::default();
    pipelines.insert(Pipeline::new(
        Signal::Traces,
        Chain::identity(),
        &[],
        Arc::new(Default::default()),
        metrics.clone(),
    ));
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let (tx, _rx) = tokio::sync::mpsc::unbounded_channel();
    let manager = Manager::new(
        Arc::new(Runtime::new(None)?),
        Arc::new(pipelines),
        metrics,
        None,
        tx,
    );
    let bytes = std::fs::read(args.wasm.join("set-attribute.wasm"))?;
    let (compile, put) = rt.block_on(async {
        let started = Instant::now();
        let sha256 = manager.upload(bytes, None).await?;
        let compile = started.elapsed();
        let mut puts = Duration::ZERO;
        for i in 0..20 {
            let request: VersionSpec = serde_json::from_value(serde_json::json!({
                "module": sha256, "config": { "key": "k", "value": format!("v{i}") },
            }))?;
            let started = Instant::now();
            manager.put(Signal::Traces, "zone", request).await?;
            puts += started.elapsed();
        }
        anyhow::Ok((compile, puts / 20))
    })?;

    let us = |d: Duration| d.as_secs_f64() * 1e6;
    let ns_span =
        |d: Duration, base: Duration| (d.as_secs_f64() - base.as_secs_f64()) * 1e9 / spans;
    println!(
        "weir filterbench: {} spans per batch, {n} batches per figure",
        args.spans
    );
    println!(
        "  decode + encode of a batch (for scale)    {:>9.1} µs",
        us(codec)
    );
    println!(
        "  validating walk of a batch (no filters)   {:>9.1} µs  ({:.0} ns/span, {:.0} MB/s)",
        us(walk),
        walk.as_secs_f64() * 1e9 / spans,
        bodies.iter().map(Vec::len).sum::<usize>() as f64
            / bodies.len() as f64
            / walk.as_secs_f64()
            / 1e6
    );
    println!(
        "  chain: none                               {:>9.1} µs/batch",
        us(none)
    );
    println!(
        "  chain: 1 noop                             {:>9.1} µs/batch",
        us(one_noop)
    );
    println!(
        "  chain: 3 noops                            {:>9.1} µs/batch",
        us(three_noops)
    );
    println!(
        "  3 noops vs (decode + encode + none)       {:>9.1} %  of no-filter throughput",
        100.0 * (us(codec) + us(none)) / (us(codec) + us(three_noops))
    );
    println!(
        "  trace ids, one call per span              {:>9.1} ns/span (over 1 noop)",
        ns_span(per_call, one_noop)
    );
    println!(
        "  trace ids, bulk                           {:>9.1} ns/span (over 1 noop)",
        ns_span(bulk, one_noop)
    );
    println!(
        "  set one attribute per span                {:>9.1} ns/span (over 1 noop)",
        ns_span(rewrite, one_noop)
    );
    println!(
        "  sampler (ratio 1)                         {:>9.1} ns/span (over 1 noop)",
        ns_span(sampler_t, one_noop)
    );
    println!(
        "  redactor (all built-ins, 2 block keys)    {:>9.1} ns/span (over 1 noop)",
        ns_span(redactor_t, one_noop)
    );
    println!(
        "  router (3 rules, per item)                {:>9.1} ns/span (over 1 noop)",
        ns_span(router_t, one_noop)
    );
    println!(
        "  kernel: pattern scan (redactor's set)     {:>9.1} ns/span (native, no Wasm)",
        scan_kernel.as_secs_f64() * 1e9 / spans
    );
    println!(
        "  kernel: SHA-256 of 64 bytes               {:>9.1} ns",
        sha_kernel.as_secs_f64() * 1e9
    );
    println!(
        "  chain: sampler + redactor + router        {:>9.1} µs/batch",
        us(edge_t)
    );
    println!(
        "  instance creation (instantiate + init)    {:>9.1} µs",
        us(instance)
    );
    println!(
        "  push: upload + compile (cold)             {:>9.1} ms",
        compile.as_secs_f64() * 1e3
    );
    println!(
        "  push: validate + swap (compiled)          {:>9.1} ms",
        put.as_secs_f64() * 1e3
    );
    Ok(())
}

/// The example filter's configuration (examples/filters/testdata/config.json).
const EXAMPLE: &str = r#"{"drop_prefix": "health", "key": "team", "value": "checkout"}"#;

/// This process's resident memory, in bytes.
fn rss() -> Result<u64> {
    Ok(procstat::rss_kib(std::process::id())? * 1024)
}

/// `--language`: the example filter as each language builds it.
fn languages(b: &Bench, args: &Args, payloads: &[Payload]) -> Result<()> {
    let mib = |bytes: u64| bytes as f64 / (1 << 20) as f64;
    println!(
        "weir filterbench: the example filter per language, {} spans per batch",
        args.spans
    );
    println!(
        "  {:<8} {:>10} {:>11} {:>13} {:>12} {:>14} {:>16}",
        "language", "module", "compile", "instance", "per span", "memory/inst.", "resident added"
    );
    let noop = Chain::new(vec![b.load("noop", "")?]);
    for (name, path) in &args.language {
        let bytes = std::fs::read(path).with_context(|| format!("{}", path.display()))?;
        let before = rss()?;
        // Compile: a runtime of its own, without a disk cache, so nothing is reused.
        let runtime = Arc::new(Runtime::new(None)?);
        let started = Instant::now();
        let compiled = runtime.compile(&bytes)?;
        let compile = started.elapsed();
        let spec = FilterSpec {
            name: name.clone(),
            config: EXAMPLE.to_string(),
            on_error: OnError::FailClosed,
            limits: FilterLimits {
                deadline: Duration::from_secs(1),
                concurrency: 64,
                ..Default::default()
            },
        };
        let filter = LoadedFilter::load(
            runtime,
            spec,
            compiled,
            Signal::Traces,
            b.metrics.clone(),
            None,
        )?;
        // Instance creation (instantiate + init), a bounded number of times.
        let rounds = 16u32;
        let started = Instant::now();
        for _ in 0..rounds {
            filter.prewarm().map_err(|e| anyhow::anyhow!("{e}"))?;
        }
        let instance = started.elapsed() / rounds;
        let chain = Chain::new(vec![filter.clone()]);
        let iterations = (args.iterations / 4).max(40);
        let [with, base] = per_batch_all(&[&chain, &noop], payloads, iterations)?[..] else {
            unreachable!("one figure per chain")
        };
        let per_span = (with.as_secs_f64() - base.as_secs_f64()) * 1e9 / args.spans as f64;
        let memory = filter
            .stats
            .instance_memory
            .load(std::sync::atomic::Ordering::Relaxed);
        let added = rss()?.saturating_sub(before);
        println!(
            "  {:<8} {:>7.2} MB {:>8.0} ms {:>10.0} µs {:>9.0} ns {:>10.1} MiB {:>12.1} MiB",
            name,
            bytes.len() as f64 / 1e6,
            compile.as_secs_f64() * 1e3,
            instance.as_secs_f64() * 1e6,
            per_span,
            mib(memory),
            mib(added),
        );
        drop(chain);
        drop(filter);
    }
    println!(
        "  (per span: over a one-noop chain; resident added: this process after compile, load and {} instances)",
        16 + 1
    );
    Ok(())
}

/// The redactor's pattern set (every built-in, two key names), natively, over every attribute of every
/// span and resource, as `scan` walks them: the time per batch.
fn scan_kernel(payloads: &[Payload], n: usize) -> Result<Duration> {
    let spec = weir_kernels::PatternSpec {
        detectors: weir_kernels::Detector::ALL.to_vec(),
        key_names: vec!["password".into(), "authorization".into()],
        ..Default::default()
    };
    let set = weir_kernels::PatternSet::compile(&spec)?;
    let started = Instant::now();
    let mut found = Vec::new();
    for i in 0..n {
        let Payload::Traces(t) = &payloads[i % payloads.len()] else {
            continue;
        };
        for rs in &t.resource_spans {
            let resource = rs.resource.iter().flat_map(|r| &r.attributes);
            let spans = rs
                .scope_spans
                .iter()
                .flat_map(|s| &s.spans)
                .flat_map(|s| &s.attributes);
            for kv in resource.chain(spans) {
                if set.key_rule(&kv.key).is_some() {
                    continue;
                }
                if let Some(
                    opentelemetry_proto::tonic::common::v1::any_value::Value::StringValue(v),
                ) = kv.value.as_ref().and_then(|v| v.value.as_ref())
                {
                    found.clear();
                    set.find_values(v, &mut found);
                    std::hint::black_box(&found);
                }
            }
        }
    }
    Ok(started.elapsed() / n as u32)
}
