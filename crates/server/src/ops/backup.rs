//! `healthcode backup` and `healthcode restore` for the embedded store: a data directory copied
//! while a server runs on it (the database through SQLite's online backup, which only reads, so
//! the directory's lock is neither needed nor taken), and restored into a fresh directory. On
//! PostgreSQL the database's own tools do it (docs/operations.md): these refuse.

use std::path::{Path, PathBuf};

use healthcode_store_sqlite::{backup_database, check_database};

use crate::datadir::{DataDir, LOCK_FILE};
use crate::{Config, StartError};

/// What a backup or a restore wrote.
#[derive(Debug)]
pub struct Copied {
    /// The directory written.
    pub dir: PathBuf,
    /// Files written.
    pub files: usize,
    /// Bytes written.
    pub bytes: u64,
}

fn fail(what: String) -> impl FnOnce(std::io::Error) -> StartError {
    move |e| StartError::caused(what, e)
}

/// Makes `dir`, which must not exist, readable by its owner only.
fn new_private_dir(dir: &Path) -> Result<(), StartError> {
    if dir.exists() {
        return Err(StartError::msg(format!(
            "{} exists already; give a new directory",
            dir.display()
        )));
    }
    let mut b = std::fs::DirBuilder::new();
    b.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut b, 0o700);
    b.create(dir)
        .map_err(fail(format!("cannot create {}", dir.display())))
}

/// Copies the files of `from` into `to` (a directory that exists), subdirectories included,
/// except the database's files (copied by the backup API), the lock, and SQLite's log files.
fn copy_tree(from: &Path, to: &Path, skip: &[PathBuf], out: &mut Copied) -> Result<(), StartError> {
    let entries = std::fs::read_dir(from).map_err(fail(format!("cannot read {}", from.display())))?;
    for entry in entries {
        let entry = entry.map_err(fail(format!("cannot read {}", from.display())))?;
        let path = entry.path();
        let name = entry.file_name();
        let name_text = name.to_string_lossy();
        if skip.contains(&path)
            || name_text == LOCK_FILE
            || name_text.ends_with("-wal")
            || name_text.ends_with("-shm")
        {
            continue;
        }
        let target = to.join(&name);
        let kind = entry
            .file_type()
            .map_err(fail(format!("cannot read {}", path.display())))?;
        if kind.is_dir() {
            new_private_dir(&target)?;
            copy_tree(&path, &target, skip, out)?;
        } else if kind.is_file() {
            out.bytes +=
                std::fs::copy(&path, &target).map_err(fail(format!("cannot copy {}", path.display())))?;
            out.files += 1;
        }
    }
    Ok(())
}

fn sqlite_only(config: &Config, what: &str) -> Result<(), StartError> {
    if config.database_url.is_some() {
        return Err(StartError::msg(format!(
            "{what} is for the embedded SQLite store; back PostgreSQL up with pg_dump (docs/operations.md)"
        )));
    }
    Ok(())
}

fn size(path: &Path) -> u64 {
    std::fs::metadata(path).map(|m| m.len()).unwrap_or(0)
}

/// Backs the data directory up into `dest` (a new directory): its keys and the key material
/// file as they are, the database as it was at one instant, while a server may be running on it.
pub fn backup_now(config: &Config, dest: &Path) -> Result<Copied, StartError> {
    sqlite_only(config, "backup")?;
    let dir = &config.data_dir;
    let db = DataDir::database_in(dir);
    if !db.exists() {
        return Err(StartError::msg(format!("{} holds no database", dir.display())));
    }
    let ix = healthcode_store_sqlite::SqliteStore::checkins_path(&db);
    new_private_dir(dest)?;
    let mut out = Copied {
        dir: dest.to_owned(),
        files: 0,
        bytes: 0,
    };
    copy_tree(dir, dest, &[db.clone(), ix], &mut out)?;
    let to = DataDir::database_in(dest);
    backup_database(&db, &to).map_err(|e| StartError::caused("the database backup failed", e))?;
    out.files += 2;
    out.bytes += size(&to) + size(&healthcode_store_sqlite::SqliteStore::checkins_path(&to));
    Ok(out)
}

/// Restores a backup made by [`backup_now`] into the configured data directory, which must not
/// exist: the database is checked first, then everything is copied.
pub fn restore_now(config: &Config, from: &Path) -> Result<Copied, StartError> {
    sqlite_only(config, "restore")?;
    let db = DataDir::database_in(from);
    if !db.exists() {
        return Err(StartError::msg(format!("{} holds no database", from.display())));
    }
    check_database(&db).map_err(|e| StartError::caused("the backup is not usable", e))?;
    let to = &config.data_dir;
    new_private_dir(to)?;
    let mut out = Copied {
        dir: to.clone(),
        files: 0,
        bytes: 0,
    };
    copy_tree(from, to, &[], &mut out)?;
    Ok(out)
}
