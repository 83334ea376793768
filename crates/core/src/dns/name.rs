//! Domain names in wire format: configured names turned into lowercase wire
//! format once, at zone build, and names inside messages skipped (never
//! followed) while looking for the OPT record or a TTL.

use super::wire::MAX_NAME_LEN;

/// Converts a configured name to lowercase wire format; `*` only as a whole
/// first label. The error says what is wrong with the name.
pub(super) fn name_to_wire(name: &str) -> Result<Vec<u8>, &'static str> {
    let trimmed = name.strip_suffix('.').unwrap_or(name);
    if trimmed.is_empty() {
        return Err("empty name");
    }
    let mut wire = Vec::with_capacity(trimmed.len() + 2);
    for (i, label) in trimmed.split('.').enumerate() {
        if label.is_empty() {
            return Err("empty label");
        }
        if label.len() > 63 {
            return Err("label longer than 63 bytes");
        }
        let ok = label == "*" && i == 0 || label.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if !ok {
            return Err("labels are letters, digits, '-' and '_'; '*' only as the first label");
        }
        wire.push(label.len() as u8);
        wire.extend(label.bytes().map(|b| b.to_ascii_lowercase()));
    }
    wire.push(0);
    if wire.len() > MAX_NAME_LEN {
        return Err("longer than 255 bytes");
    }
    Ok(wire)
}

/// The position just past the owner name at `pos` (labels, ending in a root
/// label or a compression pointer, which is not followed); `None` if the name
/// is cut short, uses a reserved label type or runs past 255 bytes.
pub(super) fn skip_owner_name(msg: &[u8], mut pos: usize) -> Option<usize> {
    let start = pos;
    loop {
        let len = *msg.get(pos)?;
        match len & 0xC0 {
            0x00 if len == 0 => return Some(pos + 1),
            0x00 => pos += 1 + usize::from(len),
            0xC0 => return Some(pos + 2),
            _ => return None,
        }
        if pos - start > MAX_NAME_LEN {
            return None;
        }
    }
}
