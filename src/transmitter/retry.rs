//! What a push attempt's outcome means for the SET (RFC 8935 §2.2-§4): done, try again later,
//! or give up.

use std::time::Duration;

use rand::Rng as _;

/// The fate of one push attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// 202 Accepted (PUSH-08): delivered.
    Delivered,
    /// A failure that may pass (network error, 5xx, 429, 401/403 before a credential
    /// refresh): retry after the delay, unless the SET is too old by then.
    Retry {
        /// Why, for the stream's failure record.
        error: String,
        /// The receiver's own `Retry-After`, if it gave one.
        retry_after: Option<Duration>,
    },
    /// A failure retrying cannot fix (PUSH-05, PUSH-14): a 400 naming the SET invalid.
    Reject {
        /// Why, for the stream's failure record.
        error: String,
    },
}

/// Classifies a push response by status, `Retry-After` header value and body.
pub fn classify(status: u16, retry_after: Option<&str>, body: &str) -> Outcome {
    let detail = || {
        let body = body.trim();
        let shown: String = body.chars().take(512).collect();
        if shown.is_empty() {
            format!("HTTP {status}")
        } else {
            format!("HTTP {status}: {shown}")
        }
    };
    match status {
        202 => Outcome::Delivered,
        // Some receivers answer 200 or 204; RFC 8935 §2.2 says 202, but the SET was taken.
        200..=299 => Outcome::Delivered,
        429 | 500..=599 | 401 | 403 | 408 => Outcome::Retry {
            error: detail(),
            retry_after: retry_after.and_then(parse_retry_after),
        },
        _ => Outcome::Reject { error: detail() },
    }
}

/// `Retry-After` as delay-seconds (RFC 9110 §10.2.3). The HTTP-date form is not honoured:
/// ssfd's own backoff applies instead.
fn parse_retry_after(value: &str) -> Option<Duration> {
    value.trim().parse::<u64>().ok().map(Duration::from_secs)
}

/// The delay before attempt number `attempts + 1`: exponential from `initial`, capped at
/// `max`, with full jitter over the upper half so that many SETs failing together do not
/// retry together; a receiver's `Retry-After` is a floor, capped at `max`.
pub fn backoff(
    attempts: u32,
    initial: Duration,
    max: Duration,
    retry_after: Option<Duration>,
) -> Duration {
    let exponent = attempts.min(20);
    let base = initial.saturating_mul(1u32 << exponent).min(max);
    let half = base / 2;
    let jitter = rand::thread_rng().gen_range(0..=half.as_millis().max(1) as u64);
    let delay = half + Duration::from_millis(jitter);
    match retry_after {
        Some(floor) => delay.max(floor.min(max)),
        None => delay,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classification_follows_rfc_8935() {
        assert_eq!(classify(202, None, ""), Outcome::Delivered);
        assert!(
            matches!(classify(503, Some("7"), ""), Outcome::Retry { retry_after: Some(d), .. } if d == Duration::from_secs(7))
        );
        assert!(matches!(classify(429, None, ""), Outcome::Retry { .. }));
        assert!(matches!(classify(401, None, ""), Outcome::Retry { .. }));
        let body = r#"{"err":"invalid_key","description":"Key ID 12345 has been revoked."}"#;
        match classify(400, None, body) {
            Outcome::Reject { error } => assert!(error.contains("invalid_key"), "{error}"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn backoff_grows_is_capped_and_honours_retry_after() {
        let (initial, max) = (Duration::from_secs(1), Duration::from_secs(60));
        for attempts in 0..30 {
            let delay = backoff(attempts, initial, max, None);
            let base = initial.saturating_mul(1 << attempts.min(20)).min(max);
            assert!(
                delay >= base / 2 && delay <= base,
                "attempt {attempts}: {delay:?}"
            );
        }
        let floor = backoff(0, initial, max, Some(Duration::from_secs(30)));
        assert!(floor >= Duration::from_secs(30));
        let capped = backoff(0, initial, max, Some(Duration::from_secs(3600)));
        assert!(capped <= max);
    }
}
