//! What both OTLP exporters take from their configuration the same way: the configured headers, the
//! compression and the attempt timeout.

use std::time::Duration;

use super::OtlpExporterConfig;
use http::{HeaderMap, HeaderName, HeaderValue};
use weir_wire::codec::Encoding;

/// An OTLP upstream's settings.
#[derive(Debug)]
pub(crate) struct Upstream {
    /// The configured headers (gRPC metadata), names in lower case.
    pub headers: HeaderMap,
    /// Encoding and level, `None` uncompressed.
    pub compression: Option<(Encoding, i32)>,
    /// Time one attempt may take.
    pub timeout: Duration,
    /// The header the request's tenant goes in (`tenant_header`).
    pub tenant_header: Option<HeaderName>,
}

impl Upstream {
    /// The settings of `config`; an invalid header is an error naming it.
    pub fn new(config: &OtlpExporterConfig) -> Result<Self, String> {
        let mut headers = HeaderMap::new();
        for (k, v) in &config.headers {
            let name = HeaderName::from_bytes(k.to_ascii_lowercase().as_bytes())
                .map_err(|_| format!("header name `{k}`"))?;
            let value = HeaderValue::from_str(v).map_err(|_| format!("header `{k}` value"))?;
            headers.insert(name, value);
        }
        let tenant_header = config
            .tenant_header
            .as_deref()
            .map(|h| {
                HeaderName::from_bytes(h.to_ascii_lowercase().as_bytes())
                    .map_err(|_| format!("tenant_header `{h}`"))
            })
            .transpose()?;
        Ok(Self {
            tenant_header,
            headers,
            compression: config.compression(),
            timeout: config.timeout,
        })
    }

    /// The configured headers, and the tenant's header when there is a tenant to send.
    pub fn headers_for(&self, base: &HeaderMap, tenant: Option<&str>) -> HeaderMap {
        let mut headers = base.clone();
        if let (Some(name), Some(t)) = (&self.tenant_header, tenant)
            && let Ok(value) = HeaderValue::from_str(t)
        {
            headers.insert(name.clone(), value);
        }
        headers
    }
}
