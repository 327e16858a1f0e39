//! The storage's fixed shape: how many lanes the hot table has and how
//! long each is current (see `lanes`), and how many slots the history has
//! (see `history`). Migrations 5, 6 and 8 are written with these numbers,
//! so none can change without a migration.

use std::time::Duration;

/// How long a lane is current (the `lane` column's default, set by
/// migration 8; migration 5 made it 10 s). A lane holds at most three
/// periods of churn, and that is what every claim walks while a
/// transaction left open keeps vacuum from removing any of it: 4 s keeps
/// it to 12 s, and a clearing every 4 s costs a moment's lock.
pub(crate) const PERIOD: Duration = Duration::from_secs(4);

/// How many lanes `runs` has (also in migration 5).
pub(crate) const LANES: usize = 3;

/// How many slots `ended_runs` has (also in migration 6).
pub(crate) const SLOTS: usize = 8;
