//! The API's model on disk: `ec2.json` in the state dir, written atomically
//! (a temporary file, fsync, rename, fsync of the directory), so a kill -9
//! at any moment leaves either the model before a call or the one after,
//! and a call is answered only once its model is on disk.

use std::io::Write;
use std::path::{Path, PathBuf};

use privlink_core::api::ec2::Ec2;

/// Why the model could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum ModelFileError {
    /// Reading or writing failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The error.
        source: std::io::Error,
    },
    /// The file is not a model privlink wrote.
    #[error("{path}: not a privlink API model ({source}); move it away to start with no VPCs")]
    Corrupt {
        /// The file.
        path: String,
        /// What serde said.
        source: serde_json::Error,
    },
}

/// The model file of a state dir.
pub struct ModelFile {
    path: PathBuf,
}

impl ModelFile {
    /// `ec2.json` in `state_dir`.
    pub fn in_dir(state_dir: &Path) -> ModelFile {
        ModelFile { path: state_dir.join("ec2.json") }
    }

    /// The stored model, or an empty one of `region` when there is none.
    pub fn load(&self, region: &str) -> Result<Ec2, ModelFileError> {
        let path = self.path.display().to_string();
        match std::fs::read(&self.path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|source| ModelFileError::Corrupt { path, source }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Ec2::new(region)),
            Err(source) => Err(ModelFileError::Io { path, source }),
        }
    }

    /// Stores `model` atomically and durably.
    pub fn save(&self, model: &Ec2) -> Result<(), ModelFileError> {
        let io = |source| ModelFileError::Io { path: self.path.display().to_string(), source };
        let dir = self.path.parent().unwrap_or(Path::new("."));
        std::fs::create_dir_all(dir).map_err(io)?;
        let tmp = self.path.with_extension("json.tmp");
        let mut f = std::fs::File::create(&tmp).map_err(io)?;
        f.write_all(&serde_json::to_vec_pretty(model).expect("the model serializes")).map_err(io)?;
        f.sync_all().map_err(io)?;
        std::fs::rename(&tmp, &self.path).map_err(io)?;
        std::fs::File::open(dir).and_then(|d| d.sync_all()).map_err(io)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_missing_and_corrupt() {
        let dir = std::env::temp_dir().join(format!("plk-model-{}-{}", std::process::id(), line!()));
        let f = ModelFile::in_dir(&dir);
        assert_eq!(f.load("us-east-1").unwrap(), Ec2::new("us-east-1"));
        let mut m = Ec2::new("us-east-1");
        m.tags.insert("vpc-12345678".into(), [("k".to_string(), "v".to_string())].into());
        f.save(&m).unwrap();
        assert_eq!(f.load("us-east-1").unwrap(), m);
        std::fs::write(dir.join("ec2.json"), b"{nope").unwrap();
        assert!(matches!(f.load("us-east-1"), Err(ModelFileError::Corrupt { .. })));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
