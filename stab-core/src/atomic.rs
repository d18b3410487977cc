//! Whole-file and whole-directory writes that a reader never sees half done, and the
//! cleanup of what a killed writer left behind.
//!
//! Every writer of a file that is written whole (caches, checkpoints, plots, reports,
//! the artifacts of a run) goes through this module: the bytes go to a temporary sibling
//! `.tmp-<name>-<pid>-<n>`, are synced, and the temporary is renamed over the target.
//! While it writes, the process holds an exclusive lock on the temporary (on
//! `<temp dir>/.lock` for a directory), so [`clean_stale`] can tell the leftover of a
//! dead process (its lock is free) from a write in progress (locked) without trusting
//! process ids. Files are created with the process's umask (0644 under the usual 022),
//! so every cache file has the same mode. The append-only logs (`runs.jsonl`,
//! `analyses.jsonl`) are not rewritten and do not come here: they append one line with
//! one `write` and sync it (see [`crate::store`]).
//!
//! Errors name the path. Those the user must fix (permission denied, a read-only file
//! system, a path that is a directory or crosses a file) are [`InputError`]s, so they
//! exit with code 2.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

use crate::error::InputError;

/// Prefix of every temporary this module creates.
pub const TEMP_PREFIX: &str = ".tmp-";

/// Leftovers without a lock (older stab versions, other tools) are removed only when
/// they are at least this old.
const UNLOCKED_AGE: Duration = Duration::from_secs(3600);

/// How old a temporary with a free lock must be before it counts as a dead writer's.
const LOCK_GRACE: Duration = Duration::from_secs(60);

static COUNTER: AtomicU64 = AtomicU64::new(0);

fn temp_sibling(target: &Path) -> io::Result<PathBuf> {
    let parent = parent_of(target);
    let name = target
        .file_name()
        .and_then(|n| n.to_str())
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "the path has no file name"))?;
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    Ok(parent.join(format!("{TEMP_PREFIX}{name}-{}-{n}", std::process::id())))
}

fn parent_of(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

/// The error of an I/O operation on `path`: an [`InputError`] when the user can fix it
/// (permissions, read-only file system, wrong kind of path), else a plain error; both
/// name the path.
pub fn io_error(what: &str, path: &Path, e: io::Error) -> crate::Error {
    use io::ErrorKind::*;
    let fixable = matches!(
        e.kind(),
        PermissionDenied | ReadOnlyFilesystem | IsADirectory | NotADirectory | AlreadyExists
    );
    let message = format!("cannot {what}: {e}");
    if fixable {
        InputError::new(message)
            .file(path.display().to_string())
            .hint(match e.kind() {
                PermissionDenied | ReadOnlyFilesystem => {
                    "the location is not writable; choose a writable directory (e.g. --out DIR)"
                }
                _ => "a file or directory of another kind is in the way; move it or choose another path",
            })
            .into()
    } else {
        crate::Error::Internal(
            anyhow::Error::new(e).context(format!("cannot {what} {}", path.display())),
        )
    }
}

/// Create `dir` and its parents, with an error naming it.
pub fn create_dir(dir: &Path) -> crate::Result<()> {
    std::fs::create_dir_all(dir).map_err(|e| io_error("create the directory", dir, e))
}

/// Refuse to replace `path`, a file the user named, unless they said so with `flag`'s
/// `--overwrite`. A file that already holds exactly `bytes` is no replacement (running a
/// command twice is safe). Call it before any work, so a refusal leaves nothing behind.
pub fn check_replace(
    path: &Path,
    bytes: Option<&[u8]>,
    flag: &str,
    overwrite: bool,
) -> Result<(), crate::error::InputError> {
    let Ok(meta) = std::fs::symlink_metadata(path) else {
        return Ok(());
    };
    let same = meta.is_file() && bytes.is_some_and(|b| std::fs::read(path).is_ok_and(|c| c == b));
    if (overwrite && !meta.is_dir()) || same {
        return Ok(());
    }
    let what = if meta.is_dir() {
        "a directory"
    } else {
        "a file"
    };
    Err(crate::error::InputError::new(format!(
        "{} is {what} that exists; stab replaces a file only when asked to",
        path.display()
    ))
    .key(flag)
    .hint(if meta.is_dir() {
        "name a file path, not a directory".to_string()
    } else {
        "choose another path, or pass --overwrite to replace it".to_string()
    }))
}

/// Write `bytes` as the whole content of `path`, atomically.
pub fn write_file(path: &Path, bytes: &[u8]) -> crate::Result<()> {
    write_with(path, |w| w.write_all(bytes))
}

/// Write the whole content of `path` through `fill`, atomically: a locked temporary
/// sibling, synced, then renamed over `path`. On any error the temporary is removed and
/// `path` is as it was.
pub fn write_with(
    path: &Path,
    fill: impl FnOnce(&mut dyn Write) -> io::Result<()>,
) -> crate::Result<()> {
    let parent = parent_of(path);
    create_dir(parent)?;
    clean_stale(parent);
    let tmp = temp_sibling(path).map_err(|e| io_error("write", path, e))?;
    let result = (|| -> io::Result<()> {
        let file = OpenOptions::new().write(true).create_new(true).open(&tmp)?;
        file.lock()?;
        let mut w = io::BufWriter::new(&file);
        fill(&mut w)?;
        w.flush()?;
        drop(w);
        file.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if let Err(e) = result {
        let _ = std::fs::remove_file(&tmp);
        return Err(io_error("write", path, e));
    }
    Ok(())
}

/// A directory written whole: fill [`AtomicDir::path`], then [`AtomicDir::commit`]
/// renames it over the target (replacing an older one). Dropped without a commit, it is
/// removed.
#[derive(Debug)]
pub struct AtomicDir {
    tmp: PathBuf,
    target: PathBuf,
    lock: Option<File>,
}

impl AtomicDir {
    /// Start writing the directory `target`.
    pub fn create(target: &Path) -> crate::Result<Self> {
        let parent = parent_of(target);
        create_dir(parent)?;
        clean_stale(parent);
        let tmp = temp_sibling(target).map_err(|e| io_error("write", target, e))?;
        std::fs::create_dir(&tmp).map_err(|e| io_error("create the directory", &tmp, e))?;
        let lock = OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(tmp.join(".lock"))
            .and_then(|f| f.lock().map(|_| f));
        match lock {
            Ok(f) => Ok(Self {
                tmp,
                target: target.to_path_buf(),
                lock: Some(f),
            }),
            Err(e) => {
                let _ = std::fs::remove_dir_all(&tmp);
                Err(io_error("write", target, e))
            }
        }
    }

    /// Where to write the directory's files.
    pub fn path(&self) -> &Path {
        &self.tmp
    }

    /// Put the directory in place: an older one at the target is replaced.
    pub fn commit(mut self) -> crate::Result<()> {
        let _ = std::fs::remove_file(self.tmp.join(".lock"));
        let result = (|| -> io::Result<()> {
            if self.target.exists() {
                // Move the old one aside first, so the target is never missing a file.
                let old = temp_sibling(&self.target)?;
                std::fs::rename(&self.target, &old)?;
                std::fs::rename(&self.tmp, &self.target)?;
                let _ = std::fs::remove_dir_all(&old);
                Ok(())
            } else {
                std::fs::rename(&self.tmp, &self.target)
            }
        })();
        self.lock = None;
        result.map_err(|e| io_error("write", &self.target, e))
    }
}

impl Drop for AtomicDir {
    fn drop(&mut self) {
        if self.lock.is_some() {
            let _ = std::fs::remove_dir_all(&self.tmp);
        }
    }
}

/// Whether a directory entry's name is a temporary of a writer (this module's, or the
/// `.tmp*` / `*.tmp` names of earlier stab versions).
pub fn is_temp_name(name: &str) -> bool {
    name.starts_with(".tmp") || (name.starts_with('.') && name.ends_with(".tmp"))
}

/// Remove the temporaries in `dir` whose writer is gone: those of this module whose lock
/// is free, and unlocked older ones after an hour. Returns how many were removed; errors
/// are ignored (a cleanup never fails a command).
pub fn clean_stale(dir: &Path) -> usize {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    let mut removed = 0;
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if !is_temp_name(name) {
            continue;
        }
        let path = entry.path();
        let Ok(meta) = entry.metadata() else { continue };
        if stale(&path, name, &meta) {
            let gone = if meta.is_dir() {
                std::fs::remove_dir_all(&path)
            } else {
                std::fs::remove_file(&path)
            };
            removed += usize::from(gone.is_ok());
        }
    }
    removed
}

fn stale(path: &Path, name: &str, meta: &std::fs::Metadata) -> bool {
    let age = meta
        .modified()
        .ok()
        .and_then(|m| SystemTime::now().duration_since(m).ok());
    let old = age.is_some_and(|age| age >= UNLOCKED_AGE);
    if !name.starts_with(TEMP_PREFIX) {
        return old;
    }
    // A writer creates its temporary, then locks it: in between the lock is free. A
    // temporary younger than LOCK_GRACE is never taken for a dead writer's (without this,
    // one job of `--jobs 3` removed another's fresh file and its rename failed).
    if age.is_none_or(|age| age < LOCK_GRACE) {
        return false;
    }
    let lock_file = if meta.is_dir() {
        path.join(".lock")
    } else {
        path.to_path_buf()
    };
    match File::open(&lock_file) {
        // Free lock: the writer is gone (a lock is released when its process dies).
        Ok(f) => f.try_lock().is_ok(),
        // A directory without its lock file: between mkdir and the lock, or left by a
        // writer killed at that instant.
        Err(_) => old,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_are_replaced_whole_and_no_temporary_stays() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a").join("f.bin");
        write_file(&p, b"one").unwrap();
        write_file(&p, b"two").unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"two");
        let failed = write_with(&p, |w| {
            w.write_all(b"half")?;
            Err(io::Error::other("disk full"))
        });
        assert!(failed.unwrap_err().to_string().contains("f.bin"));
        assert_eq!(std::fs::read(&p).unwrap(), b"two", "the old content stays");
        let in_the_way = dir.path().join("a").join("sub");
        std::fs::create_dir(&in_the_way).unwrap();
        let e = write_file(&in_the_way, b"x").unwrap_err();
        assert!(e.as_input().is_some(), "a directory in the way: {e}");
        std::fs::remove_dir(&in_the_way).unwrap();
        let names: Vec<_> = std::fs::read_dir(p.parent().unwrap())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("f.bin")]);
    }

    #[test]
    fn stale_temporaries_go_and_live_ones_stay() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let minutes_ago = SystemTime::now() - Duration::from_secs(120);
        let backdate = |p: &Path| File::open(p).unwrap().set_modified(minutes_ago).unwrap();
        // A dead writer's file: nobody holds its lock.
        std::fs::write(d.join(".tmp-x.bin-1-0"), b"half").unwrap();
        backdate(&d.join(".tmp-x.bin-1-0"));
        // A dead writer's directory, with its lock file.
        std::fs::create_dir(d.join(".tmp-ckpt-1-1")).unwrap();
        std::fs::write(d.join(".tmp-ckpt-1-1/.lock"), b"").unwrap();
        backdate(&d.join(".tmp-ckpt-1-1"));
        // A writer between creating its temporary and locking it: the lock is free, but
        // the file is new.
        std::fs::write(d.join(".tmp-z.bin-3-0"), b"").unwrap();
        // A live writer: this process holds the lock through another descriptor.
        let live = d.join(".tmp-y.bin-2-0");
        let f = File::create(&live).unwrap();
        f.lock().unwrap();
        // A recent unlocked temporary of another tool is left alone.
        std::fs::write(d.join(".features.bin.9.tmp"), b"").unwrap();
        std::fs::write(d.join("keep.bin"), b"").unwrap();
        assert_eq!(clean_stale(d), 2);
        let mut names: Vec<String> = std::fs::read_dir(d)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        assert_eq!(
            names,
            [
                ".features.bin.9.tmp",
                ".tmp-y.bin-2-0",
                ".tmp-z.bin-3-0",
                "keep.bin"
            ]
        );
        drop(f);
    }

    #[test]
    fn directories_commit_whole_and_vanish_when_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("ckpt");
        let w = AtomicDir::create(&target).unwrap();
        std::fs::write(w.path().join("m"), b"1").unwrap();
        w.commit().unwrap();
        let w = AtomicDir::create(&target).unwrap();
        std::fs::write(w.path().join("m"), b"2").unwrap();
        w.commit().unwrap();
        assert_eq!(std::fs::read(target.join("m")).unwrap(), b"2");
        assert!(!target.join(".lock").exists());
        let w = AtomicDir::create(&target).unwrap();
        std::fs::write(w.path().join("m"), b"3").unwrap();
        drop(w);
        assert_eq!(std::fs::read(target.join("m")).unwrap(), b"2");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[cfg(unix)]
    #[test]
    fn a_read_only_directory_is_an_input_error_naming_the_path() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let ro = dir.path().join("ro");
        std::fs::create_dir(&ro).unwrap();
        std::fs::set_permissions(&ro, std::fs::Permissions::from_mode(0o555)).unwrap();
        // A path through a regular file fails for every user, root included.
        let file = dir.path().join("plain");
        std::fs::write(&file, b"x").unwrap();
        let e = write_file(&file.join("f"), b"x").unwrap_err();
        assert!(e.as_input().is_some(), "{e:#}");
        assert!(e.to_string().contains("plain"), "{e}");
        let probe = ro.join("probe");
        if std::fs::write(&probe, b"").is_ok() {
            use std::io::Write as _;
            let _ = writeln!(
                std::io::stderr(),
                "SKIPPED (a_read_only_directory_is_an_input_error_naming_the_path: permissions are not enforced for root; the path-through-a-file case ran)"
            );
            return;
        }
        let e = write_file(&ro.join("f"), b"x").unwrap_err();
        assert!(e.as_input().is_some(), "{e:#}");
        assert!(e.to_string().contains("ro/f"), "{e}");
    }
}
