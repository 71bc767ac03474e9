//! Configuration errors, found when a layer is built rather than at the first request.

use std::borrow::Cow;
use std::fmt;

/// A configuration value was rejected when a layer or its settings were built.
///
/// It names the setting and says what is wrong with it. It never repeats a secret.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigError {
    setting: &'static str,
    problem: Cow<'static, str>,
}

impl ConfigError {
    /// A problem with the named setting.
    pub fn new(setting: &'static str, problem: impl Into<Cow<'static, str>>) -> Self {
        Self {
            setting,
            problem: problem.into(),
        }
    }

    /// The setting that was rejected, e.g. `resource_metadata`.
    #[must_use]
    pub fn setting(&self) -> &'static str {
        self.setting
    }

    /// What is wrong with it.
    #[must_use]
    pub fn problem(&self) -> &str {
        &self.problem
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid `{}`: {}", self.setting, self.problem)
    }
}

impl std::error::Error for ConfigError {}
