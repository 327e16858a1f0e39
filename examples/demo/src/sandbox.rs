//! The demo's stand-ins for the outside world: a temp directory with an
//! upload to process and stale files to clean up. Removed on drop.

use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use worker_core::prelude::*;

pub struct Sandbox {
    pub root: PathBuf,
}

impl Sandbox {
    pub fn create() -> std::io::Result<Self> {
        let root = std::env::temp_dir().join(format!("worker-core-demo-{}", std::process::id()));
        let cleanup = root.join("cleanup");
        std::fs::create_dir_all(&cleanup)?;
        std::fs::write(root.join("upload.txt"), "quarterly numbers\n".repeat(100))?;
        let two_days_ago = SystemTime::now() - Duration::from_secs(2 * 24 * 3600);
        for i in 0..3 {
            let stale = std::fs::File::create(cleanup.join(format!("stale-{i}.tmp")))?;
            stale.set_modified(two_days_ago)?;
        }
        std::fs::write(cleanup.join("fresh.tmp"), "in use")?;
        Ok(Sandbox { root })
    }

    pub fn upload(&self) -> PathBuf {
        self.root.join("upload.txt")
    }

    /// The application config the workers read through `ctx.config()`.
    pub fn config(&self) -> AppConfig {
        AppConfig::from_value(json!({
            "cleanup": {"dir": self.root.join("cleanup"), "max_age_secs": 24 * 3600},
            "reports": {"dir": self.root},
        }))
    }
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.root);
    }
}
