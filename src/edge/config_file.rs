//! Reading a config file: the one place the config touches the file system.

use std::path::Path;

use privlink_core::config::{Config, ConfigError};

/// The `[api]` settings when `path` is an API config (it has `[api]`), `None` otherwise.
pub fn load_api(path: &Path) -> Result<Option<privlink_core::api::settings::ApiSettings>, ConfigError> {
    let file = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read { file: file.clone(), source })?;
    if !privlink_core::api::settings::is_api_config(&text) {
        return Ok(None);
    }
    privlink_core::api::settings::ApiSettings::from_toml(&file, &text).map(Some)
}

/// Reads and validates the configuration file at `path`.
pub fn load(path: &Path) -> Result<Config, ConfigError> {
    let file = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read { file: file.clone(), source })?;
    Config::from_toml(&file, &text)
}
