//! Reading a config file: the one place the config touches the file system.

use std::path::Path;

use privlink_core::api::ec2::seed;
use privlink_core::api::settings::{is_api_config, vpc_part_fingerprint, ApiSettings};
use privlink_core::config::{Config, ConfigError};

/// An `[api]` file: the API's settings, and the VPC that seeds its model.
#[derive(Debug, Clone)]
pub struct ApiFile {
    /// `[api]`, `[upstreams]` (with the VPC's `endpoint.upstream`s) and `[dns]`.
    pub settings: ApiSettings,
    /// The file's VPC, when it has one.
    pub vpc: Option<SeedVpc>,
}

/// A file's VPC part, and its fingerprint ([`vpc_part_fingerprint`]).
#[derive(Debug, Clone)]
pub struct SeedVpc {
    /// The file as path, for messages.
    pub file: String,
    /// The VPC, validated as any config is.
    pub config: Config,
    /// What the model records of the part it was seeded from.
    pub fingerprint: String,
}

/// The `[api]` file at `path`, `None` when it has no `[api]`.
pub fn load_api(path: &Path) -> Result<Option<ApiFile>, ConfigError> {
    let file = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read { file: file.clone(), source })?;
    if !is_api_config(&text) {
        return Ok(None);
    }
    let mut settings = ApiSettings::from_toml(&file, &text)?;
    let Some(fingerprint) = vpc_part_fingerprint(&text) else { return Ok(Some(ApiFile { settings, vpc: None })) };
    let config = Config::from_toml(&file, &text)?;
    let invalid = |e: seed::SeedError| ConfigError::Invalid { file: file.clone(), line: 0, key: e.key, msg: e.message };
    for (service, upstream) in seed::upstreams(&config).map_err(invalid)? {
        match settings.upstreams.get(&service) {
            Some(named) if *named != upstream => {
                return Err(invalid(seed::SeedError {
                    key: format!("upstreams.\"{service}\""),
                    message: format!("{named}, but an [[endpoint]] of it says upstream = \"{upstream}\": name one"),
                }))
            }
            _ => {
                settings.upstreams.insert(service, upstream);
            }
        }
    }
    Ok(Some(ApiFile { settings, vpc: Some(SeedVpc { file, config, fingerprint }) }))
}

/// Reads and validates the configuration file at `path`.
pub fn load(path: &Path) -> Result<Config, ConfigError> {
    let file = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read { file: file.clone(), source })?;
    Config::from_toml(&file, &text)
}
