//! Whether a time zone name exists, asked of the build machine's zone
//! database (`$TZDIR`, else `/usr/share/zoneinfo`).

use std::path::{Component, Path, PathBuf};

/// `Some(true)` if the database has `name`, `Some(false)` if it doesn't,
/// `None` if this machine has no database to ask (the runtime then checks
/// the name when the workers start).
pub(crate) fn known(name: &str) -> Option<bool> {
    let dir = std::env::var_os("TZDIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/share/zoneinfo"));
    if !dir.is_dir() {
        return None;
    }
    // A name is a relative path of plain parts: never `..` or absolute.
    let path = Path::new(name);
    let plain = !name.is_empty()
        && path
            .components()
            .all(|part| matches!(part, Component::Normal(_)));
    Some(plain && dir.join(path).is_file())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_looked_up_as_plain_relative_paths() {
        if known("UTC").is_none() {
            return; // no zone database on this machine
        }
        assert_eq!(known("Europe/Berlin"), Some(true));
        assert_eq!(known("Europe/Atlantis"), Some(false));
        assert_eq!(known("../../etc/passwd"), Some(false));
        assert_eq!(known("/etc/passwd"), Some(false));
        assert_eq!(known(""), Some(false));
    }
}
