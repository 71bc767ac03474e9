//! Time, injectable for tests.

use std::fmt;
use std::time::{SystemTime, UNIX_EPOCH};

/// Where the validator reads the current time, for `exp`, `nbf` and `iat`.
pub trait Clock: fmt::Debug + Send + Sync + 'static {
    /// Seconds since the Unix epoch.
    fn now_unix(&self) -> u64;
}

/// The system clock.
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_unix(&self) -> u64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs())
    }
}
