//! The storage's fixed shape: how many lanes the hot table has and how
//! long each is current (see `lanes`), and how many slots the history has
//! (see `history`). Migrations 5 and 6 are written with these numbers, so
//! none can change without a migration.

use std::time::Duration;

/// How long a lane is current (the `lane` column's default in
/// migration 5).
pub(crate) const PERIOD: Duration = Duration::from_secs(10);

/// How many lanes `runs` has (also in migration 5).
pub(crate) const LANES: usize = 3;

/// How many slots `ended_runs` has (also in migration 6).
pub(crate) const SLOTS: usize = 8;
