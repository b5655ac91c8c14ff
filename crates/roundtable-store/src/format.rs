//! The home's format version: one line in `HOME/format`,
//! `roundtable-home-format <n>`.
//!
//! Files that carry their own version (key files, snapshots, logs, circle
//! keys) still do; the stamp covers the whole home, node records included,
//! so a release that changes how any file is kept bumps [`HOME_FORMAT`] and
//! an older build refuses the home before it writes a byte. A home with no
//! stamp was written before stamps existed, and reads as format 1: today's.

use std::path::Path;

use crate::StoreError;
use crate::fs::Fs;

/// The home format this build writes and reads (and every earlier one).
pub const HOME_FORMAT: u32 = 1;

/// The stamp's file name inside the home.
pub const FORMAT_FILE: &str = "format";

const PREFIX: &str = "roundtable-home-format ";

/// The stamp's text for `version`.
pub fn stamp(version: u32) -> String {
    format!("{PREFIX}{version}\n")
}

/// The format of the home at `root`: its stamp, or 1 when there is none.
pub(crate) fn read(fs: &dyn Fs, root: &Path) -> Result<u32, StoreError> {
    let path = root.join(FORMAT_FILE);
    let bytes = match fs.read(&path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(1),
        Err(e) => return Err(StoreError::io("read", &path, e)),
    };
    std::str::from_utf8(&bytes)
        .ok()
        .and_then(|t| t.trim_end().strip_prefix(PREFIX))
        .and_then(|n| n.parse().ok())
        .ok_or_else(|| StoreError::BadFormatStamp { path: path.clone() })
}

/// Refuses a home stamped by a newer release, before anything is written.
pub(crate) fn check(fs: &dyn Fs, root: &Path) -> Result<(), StoreError> {
    let found = read(fs, root)?;
    if found > HOME_FORMAT {
        return Err(StoreError::NewerHome {
            home: root.to_path_buf(),
            found,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fs::OsFs;

    #[test]
    fn no_stamp_is_format_one_and_a_newer_one_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(read(&OsFs, dir.path()).unwrap(), 1);
        std::fs::write(dir.path().join(FORMAT_FILE), stamp(HOME_FORMAT)).unwrap();
        assert_eq!(read(&OsFs, dir.path()).unwrap(), HOME_FORMAT);
        check(&OsFs, dir.path()).unwrap();
        std::fs::write(dir.path().join(FORMAT_FILE), stamp(HOME_FORMAT + 1)).unwrap();
        let e = check(&OsFs, dir.path()).unwrap_err().to_string();
        assert!(e.contains("newer Roundtable"), "{e}");
        std::fs::write(dir.path().join(FORMAT_FILE), "something else").unwrap();
        assert!(matches!(
            check(&OsFs, dir.path()),
            Err(StoreError::BadFormatStamp { .. })
        ));
    }
}
