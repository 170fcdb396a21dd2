//! Keeps the session-log folder within `max_files` and `max_age_days`, oldest first.
//! The folder is scanned at start-up and on each periodic sweep, never per write:
//! between sweeps the writer tells it each new file.

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::time::Duration;

use chrono::{NaiveDateTime, Utc};

/// The file-name prefix that encodes the UTC time a session started.
const STAMP_FORMAT: &str = "%Y%m%dT%H%M%S";
const STAMP_LEN: usize = 15;

/// The session files of one folder, oldest first, and the limits they must keep.
#[derive(Debug)]
pub struct Rotation {
    dir: PathBuf,
    max_files: usize,
    max_age: Duration,
    files: VecDeque<(NaiveDateTime, String)>,
}

impl Rotation {
    /// Reads the folder and applies the limits at once.
    pub fn start(dir: &Path, max_files: usize, max_age_days: u64) -> Self {
        let mut rotation = Rotation {
            dir: dir.to_path_buf(),
            max_files,
            max_age: Duration::from_secs(max_age_days.saturating_mul(86_400)),
            files: VecDeque::new(),
        };
        rotation.sweep();
        rotation
    }

    /// Re-reads the folder (files may have been removed by hand) and applies the limits.
    /// Temp files left by a crash are removed too: they were never complete.
    pub fn sweep(&mut self) {
        let mut files = Vec::new();
        if let Ok(entries) = std::fs::read_dir(&self.dir) {
            for entry in entries.flatten() {
                let name = entry.file_name().to_string_lossy().into_owned();
                if name.starts_with('.') && name.ends_with(".json.tmp") {
                    let _ = std::fs::remove_file(entry.path());
                } else if let Some(day) = super::segment::day_of(&name) {
                    // A day's segment goes whole once its last day is past max_age_days.
                    let kept_since = (Utc::now()
                        - chrono::Duration::from_std(self.max_age)
                            .unwrap_or(chrono::Duration::MAX))
                    .date_naive();
                    if day < kept_since {
                        self.remove(&entry.path());
                    }
                } else if let Some(stamp) = stamp_of(&name) {
                    files.push((stamp, name));
                }
            }
        }
        files.sort();
        self.files = files.into();
        self.enforce();
    }

    /// Records a file the writer just renamed into place, then applies the limits.
    pub fn added(&mut self, name: String) {
        if let Some(stamp) = stamp_of(&name) {
            self.files.push_back((stamp, name));
        }
        self.enforce();
    }

    /// How many session files the folder holds.
    pub fn len(&self) -> usize {
        self.files.len()
    }

    /// Whether the folder holds no session file.
    pub fn is_empty(&self) -> bool {
        self.files.is_empty()
    }

    fn enforce(&mut self) {
        let cutoff = Utc::now().naive_utc()
            - chrono::Duration::from_std(self.max_age).unwrap_or(chrono::Duration::MAX);
        while let Some((stamp, name)) = self.files.front() {
            if self.files.len() <= self.max_files && *stamp >= cutoff {
                break;
            }
            let path = self.dir.join(name);
            self.remove(&path);
            self.files.pop_front();
        }
    }

    fn remove(&self, path: &Path) {
        if let Err(e) = std::fs::remove_file(path)
            && e.kind() != std::io::ErrorKind::NotFound
        {
            tracing::warn!(path = %path.display(), error = %e, "could not delete old session log");
        }
    }
}

/// The file name for a session that started at `now` with `id`; names sort by time.
pub fn file_name(now: chrono::DateTime<Utc>, id: &str) -> String {
    format!("{}_{id}.json", now.format("%Y%m%dT%H%M%S%.3fZ"))
}

/// The start time encoded in a session file's name; `None` for other files.
fn stamp_of(name: &str) -> Option<NaiveDateTime> {
    if !name.ends_with(".json") {
        return None;
    }
    let prefix = name.get(..STAMP_LEN)?;
    NaiveDateTime::parse_from_str(prefix, STAMP_FORMAT).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn touch(dir: &Path, name: &str) {
        std::fs::write(dir.join(name), "{}").unwrap();
    }

    fn names(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    #[test]
    fn keeps_at_most_max_files_dropping_the_oldest() {
        let dir = tempfile::tempdir().unwrap();
        let now = Utc::now();
        for i in 0..5 {
            let at = now - chrono::Duration::minutes(10 - i);
            touch(dir.path(), &file_name(at, &format!("0000000{i}")));
        }
        let mut rotation = Rotation::start(dir.path(), 3, 7);
        assert_eq!(rotation.len(), 3);
        let left = names(dir.path());
        assert!(left[0].ends_with("_00000002.json"), "{left:?}");
        let newest = file_name(now, "0000000f");
        touch(dir.path(), &newest);
        rotation.added(newest.clone());
        let left = names(dir.path());
        assert_eq!(left.len(), 3);
        assert!(left.contains(&newest));
        assert!(!left.iter().any(|n| n.ends_with("_00000002.json")));
    }

    #[test]
    fn removes_files_older_than_max_age_and_leaves_foreign_files() {
        let dir = tempfile::tempdir().unwrap();
        let now = Utc::now();
        let old = file_name(now - chrono::Duration::days(8), "aaaaaaaa");
        let recent = file_name(now - chrono::Duration::days(6), "bbbbbbbb");
        touch(dir.path(), &old);
        touch(dir.path(), &recent);
        touch(dir.path(), "notes.txt");
        touch(dir.path(), "README.json");
        touch(dir.path(), ".20260101T000000.000Z_cccccccc.json.tmp");
        let rotation = Rotation::start(dir.path(), 100, 7);
        assert_eq!(rotation.len(), 1);
        assert_eq!(names(dir.path()), vec![&recent, "README.json", "notes.txt"]);
    }

    #[test]
    fn a_segment_goes_whole_once_its_day_is_past_max_age() {
        let dir = tempfile::tempdir().unwrap();
        let segment = |days_ago| {
            let day = (Utc::now() - chrono::Duration::days(days_ago)).date_naive();
            crate::record::segment::name_of(day)
        };
        for days_ago in [9, 8, 7, 0] {
            touch(dir.path(), &segment(days_ago));
        }
        let rotation = Rotation::start(dir.path(), 1, 7);
        assert!(rotation.is_empty(), "segments are not counted as files");
        assert_eq!(names(dir.path()), vec![segment(7), segment(0)]);
    }

    #[test]
    fn names_sort_by_time() {
        let a = file_name(Utc::now() - chrono::Duration::seconds(1), "ffffffff");
        let b = file_name(Utc::now(), "00000000");
        assert!(a < b);
        assert!(stamp_of(&a).is_some());
        assert!(stamp_of("latest.json").is_none());
    }
}
