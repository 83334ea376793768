//! Units of shaping settings: [`Rate`] (bits per second) and [`ByteSize`],
//! parsed exactly from text such as "1.5Gbit", "100MB/s" or "4MiB".
//!
//! Numbers are scaled in integers and must come out whole (no fraction of a
//! bit or byte), and zero is refused: a zero rate would stall every
//! connection; leaving the setting out disables shaping instead.

use std::fmt;
use std::num::NonZeroU64;
use std::str::FromStr;

/// Why a rate or size string was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UnitError {
    /// Nothing to parse.
    #[error("empty value")]
    Empty,
    /// No number at the start.
    #[error("{0:?}: expected a number followed by a unit, e.g. 10Gbit or 4MB")]
    NoNumber(String),
    /// A number without a unit.
    #[error("{0:?}: missing unit (bit rates: bit, kbit, Mbit, Gbit, Tbit; sizes: B, KB, MB, GB, KiB, MiB, GiB)")]
    MissingUnit(String),
    /// A unit we do not know.
    #[error("{input:?}: unknown unit {unit:?} (bit rates: bit, kbit, Mbit, Gbit, Tbit or B/s, MB/s, ...; sizes: B, KB, MB, GB, KiB, MiB, GiB)")]
    UnknownUnit {
        /// The whole input.
        input: String,
        /// The unit as written.
        unit: String,
    },
    /// Zero: shaping at zero would stall every connection.
    #[error("{0:?}: must be greater than zero (leave the setting out to disable shaping)")]
    Zero(String),
    /// Does not fit in 64 bits.
    #[error("{0:?}: too large")]
    Overflow(String),
    /// A fraction of a bit or byte.
    #[error("{0:?}: not a whole number of {1}")]
    Fractional(String, &'static str),
}

/// Splits "1.5Gbit" into the exact value `number × multiplier` (checked to
/// be whole) and the unit string.
fn parse_scaled(input: &str, unit_of: impl Fn(&str) -> Option<u128>, what: &'static str) -> Result<u64, UnitError> {
    let s = input.trim();
    if s.is_empty() {
        return Err(UnitError::Empty);
    }
    let num_end = s.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(s.len());
    let (num, unit) = (&s[..num_end], s[num_end..].trim());
    let (int, frac) = num.split_once('.').unwrap_or((num, ""));
    if int.is_empty() && frac.is_empty() || frac.contains('.') {
        return Err(UnitError::NoNumber(input.to_string()));
    }
    if unit.is_empty() {
        return Err(UnitError::MissingUnit(input.to_string()));
    }
    let mult =
        unit_of(unit).ok_or_else(|| UnitError::UnknownUnit { input: input.to_string(), unit: unit.to_string() })?;
    let overflow = || UnitError::Overflow(input.to_string());
    if int.len() > 30 || frac.len() > 30 {
        return Err(overflow());
    }
    let int_v: u128 = if int.is_empty() { 0 } else { int.parse().map_err(|_| overflow())? };
    let frac_v: u128 = if frac.is_empty() { 0 } else { frac.parse().map_err(|_| overflow())? };
    let denom = 10u128.checked_pow(frac.len() as u32).ok_or_else(overflow)?;
    let frac_scaled = frac_v.checked_mul(mult).ok_or_else(overflow)?;
    if frac_scaled % denom != 0 {
        return Err(UnitError::Fractional(input.to_string(), what));
    }
    let total = int_v.checked_mul(mult).and_then(|v| v.checked_add(frac_scaled / denom)).ok_or_else(overflow)?;
    if total == 0 {
        return Err(UnitError::Zero(input.to_string()));
    }
    u64::try_from(total).map_err(|_| overflow())
}

/// Byte-size multiplier: KB/MB/GB/TB are 1000-based, KiB/MiB/GiB/TiB 1024-based.
fn byte_unit(unit: &str) -> Option<u128> {
    Some(match unit {
        "B" => 1,
        "KB" | "kB" => 1_000,
        "MB" => 1_000_000,
        "GB" => 1_000_000_000,
        "TB" => 1_000_000_000_000,
        "KiB" => 1 << 10,
        "MiB" => 1 << 20,
        "GiB" => 1 << 30,
        "TiB" => 1 << 40,
        _ => return None,
    })
}

/// Bit-rate multiplier (bits per second): decimal SI, case-insensitive
/// (`mbit` cannot mean millibits); also byte rates written `<size>/s`.
fn rate_unit(unit: &str) -> Option<u128> {
    if let Some(bytes) = unit.strip_suffix("/s") {
        return byte_unit(bytes.trim()).map(|m| m * 8);
    }
    Some(match unit.to_ascii_lowercase().as_str() {
        "bit" => 1,
        "kbit" => 1_000,
        "mbit" => 1_000_000,
        "gbit" => 1_000_000_000,
        "tbit" => 1_000_000_000_000,
        _ => return None,
    })
}

/// A rate in bits per second, never zero.
///
/// Parsed from "10Gbit", "500Mbit", "1.5Gbit", "64kbit" (decimal SI: 1 kbit
/// = 1000 bit/s) or byte rates "100MB/s", "4MiB/s" (see [`ByteSize`] units).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize)]
pub struct Rate(NonZeroU64);

impl Rate {
    /// AWS's default per-AZ endpoint bandwidth, 10 Gbit/s.
    pub const AWS_DEFAULT: Rate = Rate::from_bits_per_sec(NonZeroU64::new(10_000_000_000).unwrap());

    /// A rate of `bits` per second.
    pub const fn from_bits_per_sec(bits: NonZeroU64) -> Rate {
        Rate(bits)
    }
    /// Bits per second.
    pub fn bits_per_sec(self) -> u64 {
        self.0.get()
    }
    /// Bytes per second, rounded down.
    pub fn bytes_per_sec(self) -> u64 {
        self.0.get() / 8
    }
    /// This rate times `k`, saturating.
    pub fn saturating_mul(self, k: u64) -> Rate {
        Rate(self.0.saturating_mul(NonZeroU64::new(k.max(1)).expect("max(1)")))
    }
    /// This rate divided by `k`, at least 1 bit/s.
    pub fn div_at_least_one(self, k: u64) -> Rate {
        Rate(NonZeroU64::new((self.0.get() / k.max(1)).max(1)).expect("max(1)"))
    }
}

impl FromStr for Rate {
    type Err = UnitError;
    fn from_str(s: &str) -> Result<Rate, UnitError> {
        let bits = parse_scaled(s, rate_unit, "bits per second")?;
        Ok(Rate(NonZeroU64::new(bits).expect("parse_scaled refuses zero")))
    }
}

impl fmt::Display for Rate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let b = self.0.get();
        for (m, u) in [(1_000_000_000_000, "Tbit"), (1_000_000_000, "Gbit"), (1_000_000, "Mbit"), (1_000, "kbit")] {
            if b.is_multiple_of(m) {
                return write!(f, "{}{u}", b / m);
            }
        }
        write!(f, "{b}bit")
    }
}

/// A size in bytes, never zero: "4MB", "512KB" (1000-based), "1MiB" (1024-based), "1500B".
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize)]
pub struct ByteSize(NonZeroU64);

impl ByteSize {
    /// `bytes` bytes.
    pub const fn new(bytes: NonZeroU64) -> ByteSize {
        ByteSize(bytes)
    }
    /// The size in bytes.
    pub fn bytes(self) -> u64 {
        self.0.get()
    }
}

impl FromStr for ByteSize {
    type Err = UnitError;
    fn from_str(s: &str) -> Result<ByteSize, UnitError> {
        let b = parse_scaled(s, byte_unit, "bytes")?;
        Ok(ByteSize(NonZeroU64::new(b).expect("parse_scaled refuses zero")))
    }
}

impl fmt::Display for ByteSize {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}B", self.0.get())
    }
}
