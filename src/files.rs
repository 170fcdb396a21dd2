//! Reading files the router does not control (prompts an admin edits, session files
//! anyone with access to the folder could replace): only regular files, bounded in
//! size, and never stuck on a FIFO, whose open would otherwise wait for a writer.

use std::fs::OpenOptions;
use std::io::{Error, ErrorKind, Read};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

/// Whether a symbolic link at the path itself is read through.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Links {
    /// Follow it (prompts: Kubernetes mounts a ConfigMap as links); what it points at
    /// must still be a regular file.
    Follow,
    /// Refuse it (session files: a link could show a file from outside the folder).
    Refuse,
}

/// The regular file at `path`, open for reading: a FIFO, a device or (with
/// `Links::Refuse`) a link is refused at once, never waited on.
pub fn open_regular(path: &Path, links: Links) -> std::io::Result<std::fs::File> {
    // O_NONBLOCK: a FIFO opens at once (and is then refused) instead of blocking this
    // thread until someone writes to it. It changes nothing for a regular file.
    let mut flags = libc::O_NONBLOCK;
    if links == Links::Refuse {
        flags |= libc::O_NOFOLLOW;
    }
    let file = OpenOptions::new()
        .read(true)
        .custom_flags(flags)
        .open(path)
        .map_err(|e| match e.raw_os_error() {
            Some(libc::ELOOP) => Error::other("a symbolic link (not followed)"),
            _ => e,
        })?;
    // Checked on the open file, not the path: the path could be swapped in between.
    if !file.metadata()?.is_file() {
        return Err(Error::other("not a regular file"));
    }
    Ok(file)
}

/// The UTF-8 text of the regular file at `path`, at most `max_bytes` long.
pub fn read_text(path: &Path, max_bytes: u64, links: Links) -> std::io::Result<String> {
    let file = open_regular(path, links)?;
    let meta = file.metadata()?;
    let too_large = || Error::other(format!("larger than {max_bytes} bytes"));
    if meta.len() > max_bytes {
        return Err(too_large());
    }
    let mut text = String::new();
    file.take(max_bytes.saturating_add(1))
        .read_to_string(&mut text)
        .map_err(|e| match e.kind() {
            ErrorKind::InvalidData => Error::other("not UTF-8 text"),
            _ => e,
        })?;
    if text.len() as u64 > max_bytes {
        return Err(too_large());
    }
    Ok(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_a_regular_file_within_its_bound() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.txt");
        std::fs::write(&path, "hello").unwrap();
        assert_eq!(read_text(&path, 5, Links::Refuse).unwrap(), "hello");
        let error = read_text(&path, 4, Links::Refuse).unwrap_err();
        assert!(error.to_string().contains("larger than 4 bytes"), "{error}");
    }

    #[test]
    fn refuses_links_when_asked_and_anything_but_regular_files() {
        let dir = tempfile::tempdir().unwrap();
        let outside = dir.path().join("outside.txt");
        std::fs::write(&outside, "secret").unwrap();
        let link = dir.path().join("link.json");
        std::os::unix::fs::symlink(&outside, &link).unwrap();
        let error = read_text(&link, 100, Links::Refuse).unwrap_err();
        assert!(error.to_string().contains("symbolic link"), "{error}");
        assert_eq!(read_text(&link, 100, Links::Follow).unwrap(), "secret");
        let zero = dir.path().join("zero.json");
        std::os::unix::fs::symlink("/dev/zero", &zero).unwrap();
        let error = read_text(&zero, 100, Links::Follow).unwrap_err();
        assert!(error.to_string().contains("not a regular file"), "{error}");
        assert!(read_text(dir.path(), 100, Links::Follow).is_err());
    }

    #[test]
    fn a_fifo_is_refused_at_once_not_waited_on() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("fifo.json");
        let made = std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap();
        assert!(made.success());
        // Without O_NONBLOCK this open would wait for a writer forever.
        let error = read_text(&fifo, 100, Links::Follow).unwrap_err();
        assert!(error.to_string().contains("not a regular file"), "{error}");
    }
}
