//! [`ExportError`]: an upstream's refusal, classified as the OTLP specification says (retryable or
//! not), with the status codes to pass to a gRPC or an HTTP client.

use std::time::Duration;

use http::StatusCode;
use tonic::Code;
use tonic_types::StatusExt;

/// An export attempt, or a whole export, failed.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{message}")]
pub struct ExportError {
    /// Whether trying again later may succeed.
    pub retryable: bool,
    /// How long the upstream asked us to wait (RetryInfo, Retry-After).
    pub retry_after: Option<Duration>,
    /// The status for a gRPC client when not retryable.
    pub grpc_code: Code,
    /// The status for an HTTP client when not retryable.
    pub http_status: StatusCode,
    /// What the upstream said.
    pub message: String,
}

impl ExportError {
    /// The retryable error of a connection failure or an attempt that timed out.
    pub fn unavailable(message: impl Into<String>) -> Self {
        Self {
            retryable: true,
            retry_after: None,
            grpc_code: Code::Unavailable,
            http_status: StatusCode::SERVICE_UNAVAILABLE,
            message: message.into(),
        }
    }

    /// Whether the client should retry.
    pub fn retryable(&self) -> bool {
        self.retryable
    }

    /// Classifies a gRPC upstream's status per the OTLP specification: UNAVAILABLE, DEADLINE_EXCEEDED,
    /// CANCELLED, ABORTED, OUT_OF_RANGE and DATA_LOSS are retryable, RESOURCE_EXHAUSTED only with
    /// RetryInfo; the rest is not.
    pub fn from_grpc(status: &tonic::Status) -> Self {
        let retry_info = status.get_details_retry_info();
        let retry_after = retry_info.and_then(|r| r.retry_delay);
        let retryable = match status.code() {
            Code::Unavailable
            | Code::DeadlineExceeded
            | Code::Cancelled
            | Code::Aborted
            | Code::OutOfRange
            | Code::DataLoss => true,
            Code::ResourceExhausted => retry_after.is_some(),
            _ => false,
        };
        Self {
            retryable,
            retry_after,
            grpc_code: status.code(),
            http_status: grpc_to_http(status.code()),
            message: format!("upstream said {:?}: {}", status.code(), status.message()),
        }
    }

    /// Classifies an HTTP upstream's status: 429, 502, 503 and 504 are retryable (never 500).
    pub fn from_http(status: StatusCode, retry_after: Option<Duration>, detail: &str) -> Self {
        let retryable = matches!(status.as_u16(), 429 | 502 | 503 | 504);
        Self {
            retryable,
            retry_after: retry_after.filter(|_| retryable),
            grpc_code: http_to_grpc(status),
            http_status: status,
            message: if detail.is_empty() {
                format!("upstream said HTTP {status}")
            } else {
                format!("upstream said HTTP {status}: {detail}")
            },
        }
    }
}

fn grpc_to_http(code: Code) -> StatusCode {
    match code {
        Code::InvalidArgument | Code::FailedPrecondition => StatusCode::BAD_REQUEST,
        Code::Unauthenticated => StatusCode::UNAUTHORIZED,
        Code::PermissionDenied => StatusCode::FORBIDDEN,
        Code::NotFound | Code::Unimplemented => StatusCode::NOT_FOUND,
        Code::ResourceExhausted => StatusCode::PAYLOAD_TOO_LARGE,
        Code::AlreadyExists => StatusCode::CONFLICT,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

fn http_to_grpc(status: StatusCode) -> Code {
    match status.as_u16() {
        400 => Code::InvalidArgument,
        401 => Code::Unauthenticated,
        403 => Code::PermissionDenied,
        404 => Code::Unimplemented,
        413 => Code::ResourceExhausted,
        429 | 502 | 503 | 504 => Code::Unavailable,
        s if (400..500).contains(&s) => Code::FailedPrecondition,
        _ => Code::Internal,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tonic_types::ErrorDetails;

    #[test]
    fn grpc_classification_follows_the_spec() {
        for code in [Code::Unavailable, Code::DeadlineExceeded, Code::Aborted] {
            assert!(ExportError::from_grpc(&tonic::Status::new(code, "x")).retryable);
        }
        for code in [
            Code::InvalidArgument,
            Code::Internal,
            Code::PermissionDenied,
        ] {
            let e = ExportError::from_grpc(&tonic::Status::new(code, "x"));
            assert!(!e.retryable);
            assert_eq!(e.grpc_code, code);
        }
        let plain = tonic::Status::resource_exhausted("full");
        assert!(!ExportError::from_grpc(&plain).retryable);
        let with_info = tonic::Status::with_error_details(
            Code::ResourceExhausted,
            "full",
            ErrorDetails::with_retry_info(Some(Duration::from_millis(1500))),
        );
        let e = ExportError::from_grpc(&with_info);
        assert!(e.retryable);
        assert_eq!(e.retry_after, Some(Duration::from_millis(1500)));
    }

    #[test]
    fn http_classification_follows_the_spec() {
        for s in [429, 502, 503, 504] {
            let e = ExportError::from_http(StatusCode::from_u16(s).unwrap(), None, "");
            assert!(e.retryable, "{s}");
        }
        for s in [400, 401, 404, 413, 500] {
            let e = ExportError::from_http(StatusCode::from_u16(s).unwrap(), None, "");
            assert!(!e.retryable, "{s}");
            assert_eq!(e.http_status.as_u16(), s);
        }
        let e = ExportError::from_http(StatusCode::BAD_REQUEST, None, "bad span");
        assert_eq!(e.grpc_code, Code::InvalidArgument);
        assert!(e.message.contains("bad span"));
    }
}
