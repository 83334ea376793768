//! What privlink created on the host, recorded in the state dir before it is
//! created, so that a run which dies without cleaning up (`kill -9`, the OOM
//! killer) is cleaned up by the next: that run adopts what the record names
//! and removes it when it stops.
//!
//! The record (`DIR/created.json`) names the namespace and, once it exists,
//! its inode: the namespace's nsfs id, which `stat /run/netns/NAME` gives and
//! which tells our namespace from one made later by someone else under the
//! same name. `/etc/netns/NAME/` goes with the namespace (privlink writes it
//! only for one it created). The record is written before `ip netns add`
//! (inode unknown: a creation under way), completed after it, and removed
//! only once the namespace is gone. Everything here runs with the
//! namespace's lock held ([`crate::edge::lock`]), so no live privlink is
//! using what gets adopted or removed.
//!
//! [`claim`] decides, from the record and what `/run/netns/NAME` is now:
//!
//! | record for NAME | `/run/netns/NAME` | claim |
//! |---|---|---|
//! | any | missing | [`Claim::Create`] (recorded first) |
//! | none | present | [`Claim::Foreign`]: used as found, never removed |
//! | inode I | inode I | [`Claim::Adopt`]: used, and removed at exit |
//! | inode I | another inode | [`Claim::Foreign`]; the record is dropped |
//! | creation under way | present | [`Claim::Recreate`]: a half-made namespace, removed and made anew |

use std::io;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// What the record says privlink created.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Created {
    /// The namespace's name.
    pub netns: String,
    /// Its nsfs inode; `None` while `ip netns add` runs.
    pub inode: Option<u64>,
}

/// What to do with namespace NAME.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Claim {
    /// It does not exist: create it (and record that first).
    Create,
    /// An earlier run created it: use it and remove it at exit.
    Adopt,
    /// Someone else's: use it, leave it.
    Foreign,
    /// An earlier run died creating it: remove what is there and create it anew.
    Recreate,
}

/// The claim on namespace `name`, whose inode is `inode` (`None`: missing), given the `record`.
pub fn claim(record: Option<&Created>, name: &str, inode: Option<u64>) -> Claim {
    let Some(now) = inode else { return Claim::Create };
    match record.filter(|r| r.netns == name) {
        None => Claim::Foreign,
        Some(Created { inode: None, .. }) => Claim::Recreate,
        Some(Created { inode: Some(i), .. }) if *i == now => Claim::Adopt,
        Some(_) => Claim::Foreign,
    }
}

/// The record file in a state dir.
#[derive(Debug, Clone)]
pub struct CreatedRecord {
    path: PathBuf,
}

impl CreatedRecord {
    /// The record in state dir `dir`.
    pub fn in_dir(dir: &Path) -> CreatedRecord {
        CreatedRecord { path: dir.join("created.json") }
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// What it says; a missing file says nothing was created. A damaged one
    /// is an error: what it named cannot be told from someone else's.
    pub fn load(&self) -> io::Result<Option<Created>> {
        match std::fs::read(&self.path) {
            Ok(bytes) => {
                serde_json::from_slice(&bytes).map(Some).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Writes it (a temporary file, then a rename: never half a record).
    pub fn save(&self, created: &Created) -> io::Result<()> {
        let tmp = self.path.with_extension("json.tmp");
        std::fs::write(&tmp, serde_json::to_vec(created).expect("a record serializes"))?;
        std::fs::rename(&tmp, &self.path)
    }

    /// Removes it: nothing recorded is left.
    pub fn clear(&self) -> io::Result<()> {
        match std::fs::remove_file(&self.path) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(name: &str, inode: Option<u64>) -> Created {
        Created { netns: name.into(), inode }
    }

    #[test]
    fn claims_follow_the_table() {
        assert_eq!(claim(None, "vpc", None), Claim::Create);
        assert_eq!(claim(Some(&rec("vpc", Some(9))), "vpc", None), Claim::Create);
        assert_eq!(claim(None, "vpc", Some(9)), Claim::Foreign);
        assert_eq!(claim(Some(&rec("other", Some(9))), "vpc", Some(9)), Claim::Foreign);
        assert_eq!(claim(Some(&rec("vpc", Some(9))), "vpc", Some(9)), Claim::Adopt);
        assert_eq!(claim(Some(&rec("vpc", Some(9))), "vpc", Some(10)), Claim::Foreign);
        assert_eq!(claim(Some(&rec("vpc", None)), "vpc", Some(10)), Claim::Recreate);
    }

    #[test]
    fn the_record_round_trips_and_clears() {
        let dir = std::env::temp_dir().join(format!("plk-created-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let r = CreatedRecord::in_dir(&dir);
        assert_eq!(r.load().unwrap(), None);
        r.save(&rec("vpc", Some(4026532001))).unwrap();
        assert_eq!(r.load().unwrap(), Some(rec("vpc", Some(4026532001))));
        std::fs::write(r.path(), b"{nope").unwrap();
        assert_eq!(r.load().unwrap_err().kind(), io::ErrorKind::InvalidData);
        r.clear().unwrap();
        r.clear().unwrap();
        assert_eq!(r.load().unwrap(), None);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
