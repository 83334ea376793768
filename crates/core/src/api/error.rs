//! An API error as EC2 reports it: a code the SDKs match on, a message for
//! people, HTTP 400 (503 only for throttling-like refusals the caller may
//! retry). Bad input never becomes a 500.

use std::fmt;

/// One EC2 error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    /// e.g. `InvalidVpcID.NotFound`.
    pub code: &'static str,
    /// What went wrong, naming the parameter or the id.
    pub message: String,
    /// The HTTP status.
    pub status: u16,
}

impl ApiError {
    /// A client error (HTTP 400).
    pub fn new(code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError { code, message: message.into(), status: 400 }
    }

    /// An error with another status than 400 (401 and 403 for a refused
    /// signature, as AWS answers).
    pub fn with_status(code: &'static str, message: impl Into<String>, status: u16) -> ApiError {
        ApiError { code, message: message.into(), status }
    }

    /// `InvalidParameterValue` for `name = value`.
    pub fn invalid_value(name: &str, value: &str) -> ApiError {
        ApiError::new("InvalidParameterValue", format!("Value ({value}) for parameter {name} is invalid."))
    }

    /// `InvalidParameterCombination`.
    pub fn combination(message: impl Into<String>) -> ApiError {
        ApiError::new("InvalidParameterCombination", message)
    }

    /// `DependencyViolation`: `id` still has `what` in it.
    pub fn dependency(id: &str, what: &str) -> ApiError {
        ApiError::new("DependencyViolation", format!("The {what} '{id}' has dependencies and cannot be deleted."))
    }
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.code, self.message)
    }
}

impl std::error::Error for ApiError {}
