//! `eye backup DIR` and `eye restore DIR`: a consistent copy of the embedded store and
//! queue while `eye serve` runs, and its return into an empty data directory.
//!
//! Each file is copied with SQLite's `VACUUM INTO`, a read transaction: writers go on
//! (ingest is not blocked), and the copy is the database as of one moment. The queue is
//! copied first, then the store. An event acknowledged before the backup began is in
//! the store's copy, or, if the worker had not stored it yet, in the queue's; an event
//! in both (stored between the two copies) is stored once after a restore, as any
//! redelivery is. `manifest.json` records the time, this version, the schema version,
//! counts and each file's SHA-256, which `restore` checks before it copies anything.

use std::path::Path;

use anyhow::{Context, bail, ensure};
use eye_server::Settings;
use rusqlite::{Connection, OpenFlags};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

const MANIFEST: &str = "manifest.json";
const STORE: &str = "eye.db";
const QUEUE: &str = "queue.db";
/// The manifest's own format.
const FORMAT: u32 = 1;

#[derive(Debug, Serialize, Deserialize)]
struct Manifest {
    format: u32,
    /// The version of `eye` that made it.
    eye_version: String,
    created_at: String,
    store: StoreFacts,
    queue: QueueFacts,
}

#[derive(Debug, Serialize, Deserialize)]
struct StoreFacts {
    file: String,
    sha256: String,
    schema_version: i64,
    events: i64,
    sessions: i64,
    refused: i64,
}

#[derive(Debug, Serialize, Deserialize)]
struct QueueFacts {
    file: String,
    sha256: String,
    /// Events accepted and not yet stored when the copy was made.
    events: i64,
}

fn sha256(path: &Path) -> anyhow::Result<String> {
    use std::io::Read;
    let mut hasher = Sha256::new();
    let mut file =
        std::fs::File::open(path).with_context(|| format!("reading {}", path.display()))?;
    let mut buffer = vec![0u8; 1 << 20];
    loop {
        let read = file.read(&mut buffer)?;
        if read == 0 {
            break;
        }
        hasher.update(&buffer[..read]);
    }
    Ok(hasher
        .finalize()
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect())
}

/// `VACUUM INTO target` from the database at `source`, then its integrity check.
fn copy_database(source: &Path, target: &Path) -> anyhow::Result<Connection> {
    ensure!(
        source.exists(),
        "{} does not exist: is the data directory right (--data-dir)?",
        source.display()
    );
    let conn = Connection::open_with_flags(source, OpenFlags::SQLITE_OPEN_READ_WRITE)
        .with_context(|| format!("opening {}", source.display()))?;
    conn.busy_timeout(std::time::Duration::from_secs(30))?;
    conn.execute("VACUUM INTO ?1", [target.to_string_lossy()])
        .with_context(|| format!("copying {} into {}", source.display(), target.display()))?;
    let copy = Connection::open_with_flags(target, OpenFlags::SQLITE_OPEN_READ_ONLY)?;
    let check: String = copy.query_row("PRAGMA integrity_check", [], |row| row.get(0))?;
    ensure!(
        check == "ok",
        "the copy of {} fails its integrity check: {check}",
        source.display()
    );
    Ok(copy)
}

/// `eye backup DIR`.
pub fn backup(settings: &Settings, target: &Path) -> anyhow::Result<()> {
    ensure!(
        settings.database_url.is_none(),
        "eye backup copies the embedded store; back a PostgreSQL store up with pg_dump \
         (docs/deployment.md)"
    );
    if target.exists() {
        bail!(
            "{} exists: a backup goes into a new directory, so that it never mixes with \
             another",
            target.display()
        );
    }
    std::fs::create_dir_all(target)
        .with_context(|| format!("creating {} (is it writable?)", target.display()))?;
    let data = &settings.data_dir;
    let started = eye_core::Timestamp::now();
    // The queue first: what the worker stores meanwhile is then in the store's copy.
    let queue = copy_database(&data.join(QUEUE), &target.join(QUEUE))?;
    let queued: i64 =
        queue.query_row("SELECT coalesce(sum(events), 0) FROM messages", [], |r| {
            r.get(0)
        })?;
    let store = copy_database(&data.join(STORE), &target.join(STORE))?;
    let count = |sql: &str| -> anyhow::Result<i64> { Ok(store.query_row(sql, [], |r| r.get(0))?) };
    let manifest = Manifest {
        format: FORMAT,
        eye_version: env!("CARGO_PKG_VERSION").to_owned(),
        created_at: started.to_string(),
        store: StoreFacts {
            file: STORE.to_owned(),
            sha256: sha256(&target.join(STORE))?,
            schema_version: count("PRAGMA user_version")?,
            events: count("SELECT count(*) FROM events")?,
            sessions: count("SELECT count(*) FROM sessions")?,
            refused: count("SELECT count(*) FROM errors")?,
        },
        queue: QueueFacts {
            file: QUEUE.to_owned(),
            sha256: sha256(&target.join(QUEUE))?,
            events: queued,
        },
    };
    std::fs::write(
        target.join(MANIFEST),
        serde_json::to_string_pretty(&manifest)? + "\n",
    )?;
    eprintln!(
        "backed up {} events, {} sessions, {} refused events and {} queued events into {}",
        manifest.store.events,
        manifest.store.sessions,
        manifest.store.refused,
        manifest.queue.events,
        target.display()
    );
    Ok(())
}

/// `eye restore DIR`.
pub fn restore(settings: &Settings, source: &Path) -> anyhow::Result<()> {
    ensure!(
        settings.database_url.is_none(),
        "eye restore fills the embedded store; restore a PostgreSQL store with pg_restore \
         (docs/deployment.md)"
    );
    let data = &settings.data_dir;
    if let Ok(mut entries) = std::fs::read_dir(data)
        && entries.next().is_some()
    {
        bail!(
            "{} is not empty: a restore goes into an empty data directory, so that it never \
             overwrites data",
            data.display()
        );
    }
    let text = std::fs::read_to_string(source.join(MANIFEST)).with_context(|| {
        format!(
            "{} has no readable {MANIFEST}: not a backup, or an incomplete one",
            source.display()
        )
    })?;
    let manifest: Manifest = serde_json::from_str(&text)
        .with_context(|| format!("{MANIFEST} in {} is not a manifest", source.display()))?;
    ensure!(
        manifest.format == FORMAT,
        "the backup's format is {}, this eye reads {FORMAT}",
        manifest.format
    );
    let known = eye_store::sqlite::SCHEMA_VERSION as i64;
    ensure!(
        manifest.store.schema_version <= known,
        "the backup was made by a newer eye ({}, store schema {}); this one knows schema {known}",
        manifest.eye_version,
        manifest.store.schema_version
    );
    for (file, expected) in [
        (&manifest.store.file, &manifest.store.sha256),
        (&manifest.queue.file, &manifest.queue.sha256),
    ] {
        let path = source.join(file);
        let actual = sha256(&path).with_context(|| format!("the backup lacks {file}"))?;
        ensure!(
            &actual == expected,
            "{file} does not match its checksum in the manifest: the backup is damaged"
        );
    }
    std::fs::create_dir_all(data).with_context(|| format!("creating {}", data.display()))?;
    for file in [&manifest.store.file, &manifest.queue.file] {
        std::fs::copy(source.join(file), data.join(file))
            .with_context(|| format!("copying {file} into {}", data.display()))?;
    }
    eprintln!(
        "restored {} events, {} sessions, {} refused events and {} queued events (backup of {}) \
         into {}; start eye serve to store the queued ones",
        manifest.store.events,
        manifest.store.sessions,
        manifest.store.refused,
        manifest.queue.events,
        manifest.created_at,
        data.display()
    );
    Ok(())
}

/// `eye compact`: rewrites the embedded store without its free pages. It takes the
/// store's write lock for its duration (the worker waits; ingest does not, the queue
/// takes what arrives), so run it when ingest is quiet.
pub fn compact(settings: &Settings) -> anyhow::Result<()> {
    ensure!(
        settings.database_url.is_none(),
        "eye compact rewrites the embedded store; PostgreSQL reuses its space by itself \
         (autovacuum), and partitions dropped by retention return it at once"
    );
    let path = settings.data_dir.join(STORE);
    ensure!(path.exists(), "{} does not exist", path.display());
    let before = std::fs::metadata(&path)?.len();
    let conn = Connection::open(&path)?;
    conn.busy_timeout(std::time::Duration::from_secs(60))?;
    conn.execute_batch("VACUUM; PRAGMA wal_checkpoint(TRUNCATE);")
        .context("compacting the store")?;
    let after = std::fs::metadata(&path)?.len();
    eprintln!(
        "compacted {}: {:.1} MB -> {:.1} MB",
        path.display(),
        before as f64 / 1e6,
        after as f64 / 1e6
    );
    Ok(())
}
