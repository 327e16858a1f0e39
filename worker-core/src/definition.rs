//! A definition: what a run reads about its worker (name, default
//! timeout, counters, where it was declared). The code that runs it, the
//! [`Launcher`](crate::launch::Launcher), sits a layer up beside it in the
//! manager's registry, so that this layer needs no run or context.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use crate::error::{Error, Result};
use crate::stats::StatsCell;

pub(crate) struct Definition {
    pub(crate) name: Box<str>,
    pub(crate) default_timeout: Option<Duration>,
    pub(crate) stats: StatsCell,
    /// `file:line` of a `#[worker]` declaration; `None` for `register`.
    pub(crate) origin: Option<String>,
}

impl fmt::Debug for Definition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Definition")
            .field("name", &self.name)
            .field("default_timeout", &self.default_timeout)
            .field("origin", &self.origin)
            .finish_non_exhaustive()
    }
}

impl Definition {
    pub(crate) fn new(
        name: String,
        default_timeout: Option<Duration>,
        origin: Option<String>,
    ) -> Result<Arc<Self>> {
        validate_name(&name)?;
        Ok(Arc::new(Definition {
            name: name.into_boxed_str(),
            default_timeout,
            stats: StatsCell::default(),
            origin,
        }))
    }
}

/// Worker names are non-empty and free of whitespace and control characters,
/// so they print, log and travel in URLs unambiguously.
pub(crate) fn validate_name(name: &str) -> Result<()> {
    let reason = if name.is_empty() {
        "a worker name can't be empty"
    } else if name.chars().any(char::is_whitespace) {
        "a worker name can't contain whitespace; use kebab-case like \"send-email\""
    } else if name.chars().any(char::is_control) {
        "a worker name can't contain control characters"
    } else {
        return Ok(());
    };
    Err(Error::InvalidName {
        name: name.to_owned(),
        reason,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        for good in ["send-email", "a", "notify.sms", "ré-essai", "x_1"] {
            assert!(validate_name(good).is_ok(), "{good}");
        }
        for bad in [
            "",
            " ",
            "send email",
            "tab\there",
            "nl\n",
            "bell\u{7}",
            "nbsp\u{a0}x",
        ] {
            assert!(validate_name(bad).is_err(), "{bad:?}");
        }
    }
}
