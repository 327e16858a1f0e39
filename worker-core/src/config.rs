//! Application configuration handed to every worker, and the environment
//! (development or production) it runs in.

use std::path::Path;

use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::{Error, Result};

/// The application's configuration, a JSON document read with dotted paths.
///
/// Every run sees the manager's configuration through
/// [`WorkerContext::config`](crate::WorkerContext::config).
///
/// ```
/// use worker_core::AppConfig;
/// use serde_json::json;
///
/// let config = AppConfig::from_value(json!({"api": {"base_url": "http://api.local", "retries": 3}}));
/// assert_eq!(config.get::<String>("api.base_url").as_deref(), Some("http://api.local"));
/// assert_eq!(config.get::<u32>("api.retries"), Some(3));
/// assert_eq!(config.get::<u32>("api.missing"), None);
/// // A value of another type is `None` too, not a panic.
/// assert_eq!(config.get::<u32>("api.base_url"), None);
/// ```
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AppConfig {
    root: Value,
}

impl AppConfig {
    /// Configuration from a JSON value (normally an object).
    pub fn from_value(root: Value) -> Self {
        AppConfig { root }
    }

    /// Reads a JSON file. The error names the file and what was wrong with it.
    pub fn from_file(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let config_error = |reason: String| Error::Config {
            path: path.display().to_string(),
            reason,
        };
        let text = std::fs::read_to_string(path).map_err(|e| config_error(e.to_string()))?;
        let root = serde_json::from_str(&text).map_err(|e| config_error(e.to_string()))?;
        Ok(AppConfig { root })
    }

    /// The value at a dotted path such as `"api.base_url"`, deserialized as
    /// `T`; `None` if the path is absent or the value is not a `T`. A path
    /// segment that is a number indexes into an array: `"servers.0.host"`.
    pub fn get<T: DeserializeOwned>(&self, path: &str) -> Option<T> {
        T::deserialize(self.value(path)?).ok()
    }

    /// The raw JSON at a dotted path; `""` is the whole document.
    pub fn value(&self, path: &str) -> Option<&Value> {
        if path.is_empty() {
            return Some(&self.root);
        }
        path.split('.')
            .try_fold(&self.root, |value, key| match value {
                Value::Object(map) => map.get(key),
                Value::Array(items) => items.get(key.parse::<usize>().ok()?),
                _ => None,
            })
    }

    /// The whole document.
    pub fn as_value(&self) -> &Value {
        &self.root
    }
}

/// Where the application runs. Decides whether
/// [`WorkerContext::debug`](crate::WorkerContext::debug) logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Environment {
    /// The default: debug lines are logged.
    #[default]
    Development,
    /// `RUSTF_ENV` or `NODE_ENV` is `production` or `prod`.
    Production,
}

impl Environment {
    /// Reads `RUSTF_ENV`, else `NODE_ENV`: `production` or `prod` (any case)
    /// means [`Production`](Environment::Production), anything else or unset
    /// [`Development`](Environment::Development).
    pub fn from_env() -> Self {
        Self::from_vars(
            std::env::var("RUSTF_ENV").ok().as_deref(),
            std::env::var("NODE_ENV").ok().as_deref(),
        )
    }

    /// [`from_env`](Self::from_env) given the two variables' values.
    ///
    /// ```
    /// use worker_core::Environment;
    ///
    /// assert_eq!(Environment::from_vars(None, None), Environment::Development);
    /// assert_eq!(Environment::from_vars(None, Some("production")), Environment::Production);
    /// // RUSTF_ENV wins over NODE_ENV.
    /// assert_eq!(Environment::from_vars(Some("development"), Some("prod")), Environment::Development);
    /// ```
    pub fn from_vars(rustf_env: Option<&str>, node_env: Option<&str>) -> Self {
        Self::from_name(rustf_env.or(node_env).unwrap_or_default())
    }

    /// `production`/`prod` (any case) → production; anything else → development.
    pub fn from_name(name: &str) -> Self {
        match name.trim().to_ascii_lowercase().as_str() {
            "production" | "prod" => Environment::Production,
            _ => Environment::Development,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn dotted_paths_reach_into_objects_and_arrays() {
        let config = AppConfig::from_value(json!({"servers": [{"host": "a"}, {"host": "b"}]}));
        assert_eq!(config.get::<String>("servers.1.host").as_deref(), Some("b"));
        assert_eq!(config.get::<String>("servers.2.host"), None);
        assert_eq!(config.value(""), Some(config.as_value()));
    }

    #[test]
    fn from_file_names_the_file_in_its_error() {
        let dir = std::env::temp_dir().join(format!("worker-core-config-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let bad = dir.join("bad.json");
        std::fs::write(&bad, "{ not json").unwrap();
        let err = AppConfig::from_file(&bad).unwrap_err().to_string();
        assert!(
            err.starts_with(&format!("config file {}", bad.display())),
            "{err}"
        );

        let good = dir.join("good.json");
        std::fs::write(&good, r#"{"api": {"base_url": "x"}}"#).unwrap();
        let config = AppConfig::from_file(&good).unwrap();
        assert_eq!(config.get::<String>("api.base_url").as_deref(), Some("x"));

        let missing = AppConfig::from_file(dir.join("missing.json")).unwrap_err();
        assert!(missing.to_string().contains("missing.json"), "{missing}");
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn environment_names() {
        assert_eq!(
            Environment::from_name("production"),
            Environment::Production
        );
        assert_eq!(Environment::from_name("PROD"), Environment::Production);
        assert_eq!(Environment::from_name(""), Environment::Development);
        assert_eq!(Environment::from_name("staging"), Environment::Development);
    }
}

/// What a manager hands each run it starts; replaced as a whole when the
/// manager is reconfigured, so a run sees one consistent version.
#[derive(Debug, Clone)]
pub(crate) struct Settings {
    pub(crate) config: std::sync::Arc<AppConfig>,
    pub(crate) environment: Environment,
    pub(crate) grace_period: std::time::Duration,
    pub(crate) message_buffer: usize,
    pub(crate) observers: crate::observe::Observers,
}

/// How long a cancelled run may keep running to clean up before it is dropped.
pub const DEFAULT_GRACE_PERIOD: std::time::Duration = std::time::Duration::from_millis(250);

/// How many unread messages a run may hold for its handle.
pub const DEFAULT_MESSAGE_BUFFER: usize = 1024;

impl Default for Settings {
    fn default() -> Self {
        Settings {
            config: std::sync::Arc::default(),
            environment: Environment::from_env(),
            grace_period: DEFAULT_GRACE_PERIOD,
            message_buffer: DEFAULT_MESSAGE_BUFFER,
            observers: Default::default(),
        }
    }
}
