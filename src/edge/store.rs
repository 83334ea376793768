//! The state dir: ids and IPs kept between runs, written atomically, and
//! checked ([`State::check`]) against the config before they are used.

use std::io;
use std::path::{Path, PathBuf};

use privlink_core::config::Config;
use privlink_core::model::{State, StateError};

/// Default state directory.
pub const DEFAULT_STATE_DIR: &str = "/var/lib/privlink";

/// A state directory holding `state.json`.
#[derive(Debug, Clone)]
pub struct StateDir {
    dir: PathBuf,
}

/// Why the state could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// Reading or writing failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The OS error.
        source: io::Error,
    },
    /// The file is not ours or is damaged.
    #[error("{path}: not a privlink state file: {source}")]
    Corrupt {
        /// The file.
        path: String,
        /// What serde said.
        source: serde_json::Error,
    },
    /// A field holds a value that must not be used (the error names the file and the field).
    #[error(transparent)]
    Invalid(#[from] StateError),
}

impl StateDir {
    /// A state dir at `dir` (created on first save).
    pub fn new(dir: impl AsRef<Path>) -> StateDir {
        StateDir { dir: dir.as_ref().to_path_buf() }
    }

    fn file(&self) -> PathBuf {
        self.dir.join("state.json")
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Loads the state and checks every field against `config`: a value the
    /// plan must not use is refused, naming the file and the field.
    pub fn load_checked(&self, config: &Config) -> Result<State, StoreError> {
        let state = self.load()?;
        state.check(&self.file().display().to_string(), config)?;
        Ok(state)
    }

    /// Loads the state; a missing file is an empty state.
    pub fn load(&self) -> Result<State, StoreError> {
        let path = self.file();
        match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map_err(|source| StoreError::Corrupt { path: path.display().to_string(), source }),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(State::default()),
            Err(source) => Err(StoreError::Io { path: path.display().to_string(), source }),
        }
    }

    /// Saves the state: write a temporary file, then rename, so a crash never leaves half a file.
    pub fn save(&self, state: &State) -> Result<(), StoreError> {
        let path = self.file();
        let io_err = |source| StoreError::Io { path: path.display().to_string(), source };
        std::fs::create_dir_all(&self.dir).map_err(io_err)?;
        let tmp = self.dir.join("state.json.tmp");
        let text = serde_json::to_vec_pretty(state).expect("state serializes");
        std::fs::write(&tmp, text).map_err(io_err)?;
        std::fs::rename(&tmp, &path).map_err(io_err)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use privlink_core::model::{EndpointState, EniState};

    #[test]
    fn round_trip_and_missing_file() {
        let dir = std::env::temp_dir().join(format!("plk-store-{}", std::process::id()));
        let sd = StateDir::new(&dir);
        assert_eq!(sd.load().unwrap(), State::default());
        let mut st = State::default();
        let mut ep = EndpointState { id: "vpce-0123456789abcdef0".into(), ..Default::default() };
        ep.enis.insert(
            "subnet-a".into(),
            EniState { id: "eni-0123456789abcdef0".into(), ip: "10.0.1.4".parse().unwrap() },
        );
        st.endpoints.insert("com.amazonaws.us-east-1.ec2".into(), ep);
        sd.save(&st).unwrap();
        assert_eq!(sd.load().unwrap(), st);
        std::fs::write(dir.join("state.json"), b"{nope").unwrap();
        assert!(matches!(sd.load(), Err(StoreError::Corrupt { .. })));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
