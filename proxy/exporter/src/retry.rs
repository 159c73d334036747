//! Retries of retryable upstream answers: exponential backoff with jitter, honouring the upstream's
//! RetryInfo / Retry-After, never past the client's deadline.

use std::future::Future;
use std::hash::BuildHasher;
use std::time::{Duration, Instant};

use weir_core::ExportError;
use weir_core::config::RetryConfig;
use weir_core::{PartialSuccess, remaining};

/// Calls `attempt` (with the time it may take) until it succeeds, fails for good, or the next try would
/// start after `deadline`; then returns the last error, still marked retryable for the client.
pub async fn with_retries<F, Fut>(
    policy: &RetryConfig,
    deadline: Instant,
    mut on_retry: impl FnMut(&ExportError, Duration),
    mut attempt: F,
) -> Result<PartialSuccess, ExportError>
where
    F: FnMut(Duration) -> Fut,
    Fut: Future<Output = Result<PartialSuccess, ExportError>>,
{
    let mut backoff = policy.initial_interval;
    loop {
        let left = remaining(deadline);
        if left.is_zero() {
            return Err(ExportError::unavailable(
                "deadline passed before the upstream answered",
            ));
        }
        let err = match attempt(left).await {
            Ok(p) => return Ok(p),
            Err(e) => e,
        };
        if !err.retryable || !policy.enabled {
            return Err(err);
        }
        let delay = err.retry_after.unwrap_or_else(|| jitter(backoff));
        if delay >= remaining(deadline) {
            return Err(err);
        }
        on_retry(&err, delay);
        tokio::time::sleep(delay).await;
        backoff = backoff.mul_f64(policy.multiplier).min(policy.max_interval);
    }
}

/// A delay uniformly drawn from [d/2, d): spreads clients that failed together without ever retrying at
/// once.
fn jitter(d: Duration) -> Duration {
    let r = std::collections::hash_map::RandomState::new().hash_one(Instant::now());
    let frac = (r >> 11) as f64 / (1u64 << 53) as f64;
    d.mul_f64(0.5 + frac / 2.0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::Cell;

    fn policy() -> RetryConfig {
        RetryConfig {
            enabled: true,
            initial_interval: Duration::from_millis(1),
            max_interval: Duration::from_millis(4),
            multiplier: 2.0,
        }
    }

    #[tokio::test]
    async fn retries_retryable_errors_until_success() {
        let calls = Cell::new(0);
        let retries = Cell::new(0);
        let out = with_retries(
            &policy(),
            Instant::now() + Duration::from_secs(5),
            |_, _| retries.set(retries.get() + 1),
            |_| {
                calls.set(calls.get() + 1);
                let n = calls.get();
                async move {
                    if n < 4 {
                        Err(ExportError::unavailable("down"))
                    } else {
                        Ok(PartialSuccess::default())
                    }
                }
            },
        )
        .await;
        assert!(out.is_ok());
        assert_eq!(calls.get(), 4);
        assert_eq!(retries.get(), 3);
    }

    #[tokio::test]
    async fn does_not_retry_permanent_errors() {
        let calls = Cell::new(0);
        let out = with_retries(
            &policy(),
            Instant::now() + Duration::from_secs(5),
            |_, _| {},
            |_| {
                calls.set(calls.get() + 1);
                async {
                    Err(ExportError::from_http(
                        http::StatusCode::BAD_REQUEST,
                        None,
                        "",
                    ))
                }
            },
        )
        .await;
        assert!(!out.unwrap_err().retryable);
        assert_eq!(calls.get(), 1);
    }

    #[tokio::test]
    async fn gives_up_retryable_at_the_deadline_and_honours_retry_after() {
        let calls = Cell::new(0);
        let started = Instant::now();
        let out = with_retries(
            &policy(),
            Instant::now() + Duration::from_millis(300),
            |_, d| assert_eq!(d, Duration::from_millis(100)),
            |left| {
                calls.set(calls.get() + 1);
                assert!(left <= Duration::from_millis(300));
                async {
                    let mut e = ExportError::unavailable("down");
                    e.retry_after = Some(Duration::from_millis(100));
                    Err(e)
                }
            },
        )
        .await;
        let e = out.unwrap_err();
        assert!(e.retryable);
        // 0, 100, 200 ms; the next would start at 300 ms, at the deadline.
        assert_eq!(calls.get(), 3);
        assert!(started.elapsed() < Duration::from_millis(300));
    }

    #[test]
    fn jitter_stays_in_range() {
        for _ in 0..100 {
            let j = jitter(Duration::from_millis(100));
            assert!(j >= Duration::from_millis(50) && j < Duration::from_millis(100));
        }
    }
}
