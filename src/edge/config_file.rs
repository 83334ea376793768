//! Reading a config file: the one place the config touches the file system.

use std::path::Path;

use privlink_core::config::{Config, ConfigError};

/// Reads and validates the configuration file at `path`.
pub fn load(path: &Path) -> Result<Config, ConfigError> {
    let file = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read { file: file.clone(), source })?;
    Config::from_toml(&file, &text)
}
