//! End-to-end tests: the real `weir` binary on 127.0.0.1 ephemeral ports, real OTLP clients (the
//! OpenTelemetry SDK's OTLP exporters, tonic, raw HTTP) and a recording upstream.

mod harness;

mod admin;
mod bad_input;
mod bombs;
mod cli;
mod data_path;
mod durable;
mod edge_example;
mod filter_limits;
mod filters;
mod forwarding;
mod interop;
mod languages;
mod memory;
mod peers;
mod profiles;
mod redactor;
mod router;
mod sampler;
mod sdk;
mod shutdown;
mod signing;
mod slow_clients;
mod tls;
mod upstream_failures;
