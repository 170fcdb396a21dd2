//! `sessions.format = "segments"`: one JSON line per request in a file per UTC day,
//! `sessions-<YYYYMMDD>.jsonl`, appended by the writer thread alone, so lines never
//! interleave and no file is created, renamed or deleted per request. A line is whole
//! or it is not read: a reader skips a last line without its newline (being written, or
//! cut by a crash), and the writer ends such a line before it appends after it.

use std::io::{BufRead, BufReader, ErrorKind, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use chrono::{DateTime, NaiveDate, Utc};

use crate::files::{self, Links};

const PREFIX: &str = "sessions-";
const SUFFIX: &str = ".jsonl";

/// The segment that holds the sessions of `day`.
pub fn name_of(day: NaiveDate) -> String {
    format!("{PREFIX}{}{SUFFIX}", day.format("%Y%m%d"))
}

/// The UTC day a segment's name says it holds, if `name` is a segment's.
pub fn day_of(name: &str) -> Option<NaiveDate> {
    let day = name.strip_prefix(PREFIX)?.strip_suffix(SUFFIX)?;
    NaiveDate::parse_from_str(day, "%Y%m%d").ok()
}

/// Appends lines to the segment of the day, keeping it open between writes.
#[derive(Debug)]
pub struct Appender {
    dir: PathBuf,
    fsync: bool,
    open: Option<(NaiveDate, std::fs::File)>,
}

impl Appender {
    pub fn new(dir: &Path, fsync: bool) -> Self {
        Appender {
            dir: dir.to_path_buf(),
            fsync,
            open: None,
        }
    }

    /// Appends `line` (one JSON text, no newline in it) and its newline to the segment
    /// of `at`'s day, in one write; returns the segment's name.
    pub fn append(&mut self, at: DateTime<Utc>, line: &[u8]) -> std::io::Result<String> {
        let day = at.date_naive();
        let stale = match &self.open {
            Some((open_day, file)) => *open_day != day || file.metadata()?.nlink() == 0,
            None => true,
        };
        if stale {
            // A new day, or the file was deleted (by hand, or the folder with it).
            self.open = None;
            self.open = Some((day, self.open_segment(day)?));
        }
        let Some((_, file)) = self.open.as_mut() else {
            return Err(std::io::Error::other("no segment open"));
        };
        let mut whole = Vec::with_capacity(line.len() + 1);
        whole.extend_from_slice(line);
        whole.push(b'\n');
        let mut written = file.write_all(&whole);
        if written.is_ok() && self.fsync {
            written = file.sync_data();
        }
        if written.is_err() {
            self.open = None; // reopened, and a torn line ended, next time
        }
        written.map(|()| name_of(day))
    }

    /// Opens (or creates) the day's segment for appending: never through a link, only a
    /// regular file, and with a torn last line ended so the next line stands alone.
    fn open_segment(&self, day: NaiveDate) -> std::io::Result<std::fs::File> {
        let path = self.dir.join(name_of(day));
        let open = || {
            std::fs::OpenOptions::new()
                .read(true)
                .append(true)
                .create(true)
                .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
                .open(&path)
        };
        let mut file = match open() {
            Err(e) if e.kind() == ErrorKind::NotFound => {
                std::fs::create_dir_all(&self.dir)?;
                open()?
            }
            other => other?,
        };
        let meta = file.metadata()?;
        if !meta.is_file() {
            return Err(std::io::Error::other(format!(
                "{} is not a regular file",
                path.display()
            )));
        }
        if meta.len() > 0 {
            let mut last = [0u8; 1];
            file.seek(SeekFrom::End(-1))?;
            file.read_exact(&mut last)?;
            if last[0] != b'\n' {
                file.write_all(b"\n")?;
            }
        }
        Ok(file)
    }
}

/// Hands each whole line of the segment at `path` to `line`, at most `max_line` bytes
/// each: a longer line or one that is not UTF-8 is reported as `Err` with its line
/// number, and reading goes on. A last line without its newline is being written (or
/// was cut by a crash, and the writer will end it): it is left alone.
pub fn read_lines(
    path: &Path,
    max_line: u64,
    mut line: impl FnMut(Result<&str, String>),
) -> std::io::Result<()> {
    let file = files::open_regular(path, Links::Refuse)?;
    let mut reader = BufReader::new(file);
    let mut buffer = Vec::new();
    let mut number = 0u64;
    loop {
        buffer.clear();
        number += 1;
        let read = (&mut reader)
            .take(max_line.saturating_add(1))
            .read_until(b'\n', &mut buffer)?;
        if read == 0 {
            return Ok(());
        }
        if buffer.last() != Some(&b'\n') {
            if read as u64 > max_line {
                line(Err(format!("line {number}: longer than {max_line} bytes")));
                skip_line(&mut reader)?;
                continue;
            }
            return Ok(());
        }
        buffer.pop();
        match std::str::from_utf8(&buffer) {
            Ok(text) if text.trim().is_empty() => {}
            Ok(text) => line(Ok(text)),
            Err(_) => line(Err(format!("line {number}: not UTF-8 text"))),
        }
    }
}

/// Reads past the rest of the current line.
fn skip_line(reader: &mut impl BufRead) -> std::io::Result<()> {
    loop {
        let available = reader.fill_buf()?;
        if available.is_empty() {
            return Ok(());
        }
        match available.iter().position(|b| *b == b'\n') {
            Some(end) => {
                reader.consume(end + 1);
                return Ok(());
            }
            None => {
                let all = available.len();
                reader.consume(all);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text)
            .unwrap()
            .with_timezone(&Utc)
    }

    fn lines(path: &Path, max: u64) -> Vec<Result<String, String>> {
        let mut found = Vec::new();
        read_lines(path, max, |l| found.push(l.map(String::from))).unwrap();
        found
    }

    #[test]
    fn lines_go_to_the_segment_of_their_day_whole() {
        let dir = tempfile::tempdir().unwrap();
        let mut appender = Appender::new(dir.path(), false);
        let first = appender
            .append(at("2026-12-05T23:59:59Z"), b"{\"a\":1}")
            .unwrap();
        appender
            .append(at("2026-12-05T23:59:59Z"), b"{\"a\":2}")
            .unwrap();
        let next = appender
            .append(at("2026-12-06T00:00:00Z"), b"{\"a\":3}")
            .unwrap();
        assert_eq!(
            (first.as_str(), next.as_str()),
            ("sessions-20261205.jsonl", "sessions-20261206.jsonl")
        );
        let text = std::fs::read_to_string(dir.path().join(&first)).unwrap();
        assert_eq!(text, "{\"a\":1}\n{\"a\":2}\n");
        assert_eq!(day_of(&next), NaiveDate::from_ymd_opt(2026, 12, 6));
        assert_eq!(day_of("20261205T000000.000Z_0badf00d.json"), None);
    }

    #[test]
    fn a_torn_last_line_is_skipped_by_readers_and_ended_by_the_next_writer() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sessions-20261205.jsonl");
        std::fs::write(&path, "{\"a\":1}\n{\"a\":").unwrap();
        let read = lines(&path, 1024);
        assert_eq!(
            read,
            [Ok("{\"a\":1}".to_string())],
            "the torn line is left alone"
        );
        let mut appender = Appender::new(dir.path(), false);
        appender
            .append(at("2026-12-05T10:00:00Z"), b"{\"a\":3}")
            .unwrap();
        let read = lines(&path, 1024);
        assert_eq!(read.len(), 3);
        assert!(
            read[1].is_ok(),
            "the torn line is now whole, though not JSON"
        );
        assert_eq!(read[2], Ok("{\"a\":3}".to_string()));
    }

    #[test]
    fn a_line_over_the_bound_is_skipped_and_reading_goes_on() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sessions-20261205.jsonl");
        std::fs::write(&path, format!("{}\n{{\"a\":2}}\n", "x".repeat(5000))).unwrap();
        let read = lines(&path, 100);
        assert!(
            read[0]
                .as_ref()
                .is_err_and(|e| e.contains("longer than 100"))
        );
        assert_eq!(read[1], Ok("{\"a\":2}".to_string()));
    }

    #[test]
    fn a_deleted_segment_or_folder_is_made_again() {
        let dir = tempfile::tempdir().unwrap();
        let folder = dir.path().join("sessions");
        let mut appender = Appender::new(&folder, false);
        let name = appender.append(at("2026-12-05T10:00:00Z"), b"{}").unwrap();
        std::fs::remove_dir_all(&folder).unwrap();
        appender
            .append(at("2026-12-05T10:00:01Z"), b"{\"b\":1}")
            .unwrap();
        let text = std::fs::read_to_string(folder.join(name)).unwrap();
        assert_eq!(text, "{\"b\":1}\n");
    }

    #[test]
    fn a_link_at_the_segments_name_is_not_written_through() {
        let dir = tempfile::tempdir().unwrap();
        let outside = dir.path().join("outside.txt");
        std::fs::write(&outside, "keep").unwrap();
        let folder = dir.path().join("sessions");
        std::fs::create_dir_all(&folder).unwrap();
        std::os::unix::fs::symlink(&outside, folder.join("sessions-20261205.jsonl")).unwrap();
        let mut appender = Appender::new(&folder, false);
        assert!(appender.append(at("2026-12-05T10:00:00Z"), b"{}").is_err());
        assert_eq!(std::fs::read_to_string(&outside).unwrap(), "keep");
    }
}
