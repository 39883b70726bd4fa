//! Time, injected. Nothing in ssfd reads the system clock except [`SystemClock`], so tests can
//! move time forward (verification intervals, iat windows, key overlap) without sleeping.

use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

/// A source of the current time, in seconds and milliseconds since the Unix epoch.
pub trait Clock: Send + Sync + std::fmt::Debug + 'static {
    /// Milliseconds since 1970-01-01T00:00:00Z.
    fn now_millis(&self) -> i64;

    /// Seconds since 1970-01-01T00:00:00Z (a JWT NumericDate).
    fn now(&self) -> i64 {
        self.now_millis().div_euclid(1000)
    }
}

/// The real wall clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_millis(&self) -> i64 {
        let elapsed = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .expect("system clock is before 1970");
        i64::try_from(elapsed.as_millis()).expect("time fits in i64 milliseconds")
    }
}

/// A clock that only moves when told to: for tests.
#[derive(Debug)]
pub struct ManualClock {
    millis: AtomicI64,
}

impl ManualClock {
    /// A clock stopped at `seconds` since the epoch.
    pub fn at(seconds: i64) -> Self {
        Self {
            millis: AtomicI64::new(seconds * 1000),
        }
    }

    /// Moves the clock forward by `seconds`.
    pub fn advance(&self, seconds: i64) {
        self.millis.fetch_add(seconds * 1000, Ordering::SeqCst);
    }

    /// Sets the clock to `seconds` since the epoch.
    pub fn set(&self, seconds: i64) {
        self.millis.store(seconds * 1000, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now_millis(&self) -> i64 {
        self.millis.load(Ordering::SeqCst)
    }
}
