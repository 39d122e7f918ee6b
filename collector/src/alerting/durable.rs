//! The alerting state that must survive a restart (even `kill -9`): every alert's state, every
//! group's last message, and the outbox of messages not yet delivered. It is one JSON file,
//! replaced whole (written to a temporary name, synced, renamed, the folder synced) after every
//! evaluation round that changed it, before the round's messages are handed to the deliverers.
//!
//! What that guarantees: a message that a group owes is in the outbox before it is sent and
//! leaves it only once delivered (or given up), so a restart resends what was not delivered and
//! never sends again what was; a firing alert that was announced stays announced, so the restart
//! sends no second firing message and still sends the resolve. The window: a message delivered
//! in the milliseconds between the receiver's answer and the next write of this file is sent
//! again after a crash (at least once, never lost).

use super::deliver::Integration;
use super::dispatch::{Group, Notification};
use super::state::Alert;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::{Path, PathBuf};

/// One message owed to one integration.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub(crate) struct Delivery {
    /// Unique within the state.
    pub(crate) id: u64,
    /// The message.
    pub(crate) notification: Notification,
    /// Where it goes.
    pub(crate) integration: Integration,
}

/// Everything kept.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub(crate) struct Durable {
    /// Alerts by fingerprint.
    pub(crate) alerts: BTreeMap<String, Alert>,
    /// Groups by key.
    pub(crate) groups: BTreeMap<String, Group>,
    /// Messages not yet delivered.
    pub(crate) outbox: Vec<Delivery>,
    /// The next delivery id.
    pub(crate) next_id: u64,
}

/// The state file.
#[derive(Debug)]
pub(crate) struct StateFile {
    path: PathBuf,
}

impl StateFile {
    /// The file `state.json` in `dir` (created if missing).
    pub(crate) fn open(dir: &Path) -> std::io::Result<Self> {
        std::fs::create_dir_all(dir)?;
        Ok(Self {
            path: dir.join("state.json"),
        })
    }

    /// What was kept, or nothing on a first start. A file that cannot be read back is an error:
    /// starting empty would forget what was announced.
    pub(crate) fn load(&self) -> std::io::Result<Durable> {
        match std::fs::read(&self.path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| {
                std::io::Error::other(format!(
                    "{} is damaged ({e}); move it away to start afresh",
                    self.path.display()
                ))
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Durable::default()),
            Err(e) => Err(e),
        }
    }

    /// Replaces the file with `state`, synced.
    pub(crate) fn save(&self, state: &Durable) -> std::io::Result<()> {
        let bytes = serde_json::to_vec(state).map_err(std::io::Error::other)?;
        let tmp = self.path.with_extension("tmp");
        let mut file = std::fs::File::create(&tmp)?;
        file.write_all(&bytes)?;
        file.sync_all()?;
        std::fs::rename(&tmp, &self.path)?;
        if let Some(dir) = self.path.parent() {
            std::fs::File::open(dir)?.sync_all()?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_state_comes_back_as_it_was_saved() {
        let dir = tempfile::tempdir().expect("dir");
        let file = StateFile::open(dir.path()).expect("open");
        assert_eq!(file.load().expect("empty"), Durable::default());
        let mut state = Durable::default();
        state.alerts.insert(
            "ff".into(),
            Alert::new(
                [("alertname".to_owned(), "x".to_owned())].into(),
                BTreeMap::new(),
            ),
        );
        state.next_id = 7;
        file.save(&state).expect("save");
        assert_eq!(
            StateFile::open(dir.path())
                .expect("reopen")
                .load()
                .expect("load"),
            state
        );
        std::fs::write(dir.path().join("state.json"), b"{not json").expect("damage");
        let e = file.load().expect_err("damaged");
        assert!(e.to_string().contains("damaged"), "{e}");
    }
}
