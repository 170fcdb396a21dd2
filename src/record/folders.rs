//! Which folders hold session logs when several replicas write them: the folders given,
//! and, one level down, each sub-folder that holds session files (one per replica, e.g.
//! `logs/sessions/<pod>/`, when every pod writes its own on a shared volume).

use std::path::PathBuf;

/// `dirs` in the order given, each followed by its sub-folders (sorted) that hold at least
/// one session file. Only real folders count: a link is not followed, as session files
/// behind links are never read either. A folder that cannot be read is an error naming it.
pub fn expand(dirs: &[PathBuf]) -> Result<Vec<PathBuf>, String> {
    let mut folders: Vec<PathBuf> = Vec::new();
    for dir in dirs {
        let entries = std::fs::read_dir(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        let mut subfolders: Vec<PathBuf> = entries
            .flatten()
            .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
            .filter(|e| !e.file_name().to_string_lossy().starts_with('.'))
            .map(|e| e.path())
            .filter(|p| holds_sessions(p))
            .collect();
        subfolders.sort();
        for folder in std::iter::once(dir.clone()).chain(subfolders) {
            if !folders.contains(&folder) {
                folders.push(folder);
            }
        }
    }
    Ok(folders)
}

/// Whether `dir` holds a file named like a session (`<UTC time>_<id>.json`) or a day's
/// segment of them (`sessions-<YYYYMMDD>.jsonl`).
fn holds_sessions(dir: &std::path::Path) -> bool {
    std::fs::read_dir(dir).is_ok_and(|entries| {
        entries.flatten().any(|e| {
            let name = e.file_name();
            let name = name.to_string_lossy();
            super::store::is_session_name(&name) || super::segment::day_of(&name).is_some()
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sub_folders_with_sessions_are_added_once() {
        let root = tempfile::tempdir().unwrap();
        let (a, b, c, other) = (
            root.path().join("pod-a"),
            root.path().join("pod-b"),
            root.path().join("pod-c"),
            root.path().join("notes"),
        );
        for dir in [&a, &b, &c, &other] {
            std::fs::create_dir(dir).unwrap();
        }
        std::fs::write(a.join("20261121T130543.068Z_3fa2c1d9.json"), "{}").unwrap();
        std::fs::write(b.join("20261121T130544.068Z_3fa2c1d9.json"), "{}").unwrap();
        // A replica that writes segments.
        std::fs::write(c.join("sessions-20261121.jsonl"), "{}\n").unwrap();
        std::fs::write(other.join("todo.txt"), "").unwrap();
        std::os::unix::fs::symlink(&a, root.path().join("link")).unwrap();
        let root = root.path().to_path_buf();
        let found = expand(&[root.clone(), a.clone()]).unwrap();
        assert_eq!(found, vec![root.clone(), a, b, c]);
        assert!(expand(&[root.join("missing")]).is_err());
    }
}
