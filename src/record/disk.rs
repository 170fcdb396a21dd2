//! The session-log folder on disk: each record is written to a temp file of its own and
//! renamed into place (a reader never sees half a file). Temp files are created new,
//! never opened through a link someone planted at their name. A folder deleted while
//! the router runs is made again; a folder that cannot be written (full disk, wrong
//! owner) is reported in `DiskHealth` and retried with every record, never fatal.

use std::io::{ErrorKind, Write};
use std::path::Path;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

/// Whether the last attempt to write to the folder worked, and if not, why.
#[derive(Debug, Default)]
pub struct DiskHealth {
    failing: AtomicBool,
    problem: Mutex<Option<String>>,
}

impl DiskHealth {
    /// Why session logs cannot be written now, or `None` when the last write worked.
    pub fn problem(&self) -> Option<String> {
        if !self.failing.load(Ordering::Relaxed) {
            return None;
        }
        self.problem.lock().ok().and_then(|p| p.clone())
    }

    /// Notes how the last write went.
    pub fn set(&self, result: Result<(), &std::io::Error>) {
        match result {
            Ok(()) => self.failing.store(false, Ordering::Relaxed),
            Err(error) => {
                if let Ok(mut problem) = self.problem.lock() {
                    *problem = Some(error.to_string());
                }
                self.failing.store(true, Ordering::Relaxed);
            }
        }
    }
}

/// Writes `bytes` to `dir/name` atomically: a new temp file, then a rename. A missing
/// folder (deleted by hand, or a log volume remounted) is created again first.
pub fn write_file(dir: &Path, name: &str, bytes: &[u8], fsync: bool) -> std::io::Result<()> {
    let temp = dir.join(format!(".{name}.tmp"));
    let result = match write_new(&temp, bytes, fsync) {
        Err(e) if e.kind() == ErrorKind::NotFound => {
            std::fs::create_dir_all(dir)?;
            write_new(&temp, bytes, fsync)
        }
        other => other,
    };
    let result = result.and_then(|()| std::fs::rename(&temp, dir.join(name)));
    if result.is_err() {
        let _ = std::fs::remove_file(&temp);
    }
    result
}

/// Creates `path` as a new file and writes `bytes`. Whatever already has that name (a
/// temp file left by a crash, or a link planted there) is removed, not written through.
fn write_new(path: &Path, bytes: &[u8], fsync: bool) -> std::io::Result<()> {
    let mut file = match create_new(path) {
        Err(e) if e.kind() == ErrorKind::AlreadyExists => {
            std::fs::remove_file(path)?;
            create_new(path)?
        }
        other => other?,
    };
    file.write_all(bytes)?;
    if fsync {
        file.sync_all()?;
    }
    Ok(())
}

/// `O_CREAT | O_EXCL`: fails on any existing name, a symbolic link included, so the
/// write can never land in a file outside the folder.
fn create_new(path: &Path) -> std::io::Result<std::fs::File> {
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)
}

/// Proves `dir` exists and accepts new files by writing and removing one.
pub fn check_writable(dir: &Path) -> std::io::Result<()> {
    let name = format!(".write-check-{:08x}.json", fastrand::u32(..));
    std::fs::create_dir_all(dir)
        .and_then(|()| write_file(dir, &name, b"{}", false))
        .and_then(|()| std::fs::remove_file(dir.join(&name)))
        .map_err(|e| {
            std::io::Error::new(e.kind(), format!("{} is not writable: {e}", dir.display()))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_link_planted_at_the_temp_name_is_replaced_not_followed() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("precious.txt");
        std::fs::write(&target, "keep me").unwrap();
        let name = "20261205T120000.000Z_0badf00d.json";
        std::os::unix::fs::symlink(&target, dir.path().join(format!(".{name}.tmp"))).unwrap();
        write_file(dir.path(), name, b"{\"id\":1}", false).unwrap();
        assert_eq!(std::fs::read_to_string(&target).unwrap(), "keep me");
        assert_eq!(
            std::fs::read_to_string(dir.path().join(name)).unwrap(),
            "{\"id\":1}"
        );
    }

    #[test]
    fn a_deleted_folder_is_made_again() {
        let parent = tempfile::tempdir().unwrap();
        let dir = parent.path().join("sessions");
        write_file(&dir, "a.json", b"{}", false).unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
        write_file(&dir, "b.json", b"{}", false).unwrap();
        assert!(dir.join("b.json").is_file());
    }

    #[test]
    fn health_reports_the_last_failure_until_a_write_works() {
        let health = DiskHealth::default();
        assert_eq!(health.problem(), None);
        health.set(Err(&std::io::Error::other("No space left on device")));
        assert_eq!(health.problem().as_deref(), Some("No space left on device"));
        health.set(Ok(()));
        assert_eq!(health.problem(), None);
    }
}
