//! [`Db`]: the database as this process reaches it, what a started
//! backend shares with the handles it gives out.

use std::sync::Arc;

use sqlx::PgPool;

use crate::bus::Bus;
use crate::config::Config;
use crate::reach::Reach;
use crate::sql::Sql;

/// The pool (and the same pool within the acquire timeout, for client
/// operations), the statements, the notifications and the settings.
pub(crate) struct Db {
    pub(crate) reach: Reach,
    pub(crate) pool: PgPool,
    pub(crate) sql: Arc<Sql>,
    pub(crate) bus: Arc<Bus>,
    pub(crate) config: Arc<Config>,
}
