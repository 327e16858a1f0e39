//! [`RunId`]: a run's id, one type from the call to the database and back.
//!
//! Held as 128 bits, spelled as the hyphenated UUID only where it leaves
//! the process (a log line, JSON, SQL) or where a person typed it.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use uuid::Uuid;

/// A run's id: a UUID, kept across attempts and nodes.
///
/// In-process runs get a random one (version 4); a durable backend's runs
/// keep the one it stored. Its text is the hyphenated lowercase UUID, which
/// is what `WorkerHandle::id`, `WORKER::running` and the JSON API give.
///
/// ```
/// use worker_core::RunId;
///
/// let id: RunId = "0190f5a1-7c3e-7b2a-9d4e-1f2a3b4c5d6e".parse().unwrap();
/// assert_eq!(id.to_string(), "0190f5a1-7c3e-7b2a-9d4e-1f2a3b4c5d6e");
/// assert_eq!(serde_json::to_value(id).unwrap(), "0190f5a1-7c3e-7b2a-9d4e-1f2a3b4c5d6e");
/// assert!("run-7".parse::<RunId>().unwrap_err().contains("'run-7' is not a run id"));
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RunId(u128);

impl RunId {
    /// A new random id.
    pub fn random() -> RunId {
        RunId(Uuid::new_v4().as_u128())
    }

    /// The id as a UUID.
    pub fn as_uuid(self) -> Uuid {
        Uuid::from_u128(self.0)
    }

    /// Its last 8 hex digits: how logs and dashboards name a run in
    /// passing. The end, not the start: a durable backend's ids are
    /// UUIDv7, whose first digits are their time, so runs of the same
    /// minute share them; the last are random in both kinds.
    ///
    /// ```
    /// use worker_core::RunId;
    ///
    /// let id: RunId = "0190f5a1-7c3e-7b2a-9d4e-1f2a3b4c5d6e".parse().unwrap();
    /// assert_eq!(id.short(), "3b4c5d6e");
    /// ```
    pub fn short(self) -> String {
        format!("{:08x}", self.0 as u32)
    }

    /// The id's 128 bits: what the running set is keyed by.
    pub(crate) fn as_u128(self) -> u128 {
        self.0
    }
}

impl From<Uuid> for RunId {
    fn from(uuid: Uuid) -> Self {
        RunId(uuid.as_u128())
    }
}

impl From<RunId> for Uuid {
    fn from(id: RunId) -> Self {
        id.as_uuid()
    }
}

impl fmt::Display for RunId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.as_uuid().hyphenated(), f)
    }
}

impl fmt::Debug for RunId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RunId({self})")
    }
}

impl FromStr for RunId {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        Uuid::try_parse(text.trim()).map(RunId::from).map_err(|_| {
            format!("'{text}' is not a run id: run ids are UUIDs, as `WorkerHandle::id` gives them")
        })
    }
}

impl Serialize for RunId {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for RunId {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_id_reads_back_from_its_text_and_its_json() {
        let id = RunId::random();
        assert_eq!(id.to_string().parse::<RunId>(), Ok(id));
        let json = serde_json::to_string(&id).unwrap();
        assert_eq!(serde_json::from_str::<RunId>(&json).unwrap(), id);
        assert!(serde_json::from_str::<RunId>("\"nope\"").is_err());
    }
}
