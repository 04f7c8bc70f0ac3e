//! The store of one instance that must not forget (SPEC section 21, `backend = "local"`): an
//! embedded transactional database in one file.
//!
//! Why `redb`: pure Rust (nothing to install, nothing to link), ACID with copy-on-write pages
//! and a checksummed commit, so a process killed with `kill -9` — or a machine that loses power
//! — finds the last committed transaction on restart and nothing half-written; a stable file
//! format since 1.0; one maintainer-reviewed crate with a fuzzed storage engine. SQLite
//! (`rusqlite`) would do the same through C; `sled` is still beta; LMDB (`heed`) is C and maps
//! the file into memory, so a full disk shows up as a signal rather than an error.
//!
//! How it is used:
//! - **Reads are served from memory.** One instance owns the file (redb locks it: a second
//!   process gets "in use"), so the [`MemoryStore`] filled from the file at open is always
//!   the truth; no request ever waits on the disk to read a token or a revocation.
//! - **Writes go to both.** A write returns once its transaction is committed with
//!   [`redb::Durability::Immediate`] (fsync'd). Every write of the process goes through one
//!   writer thread that commits whatever is waiting as one transaction (group commit): a
//!   burst of callbacks costs one fsync, not one each.
//! - **Expiry is the memory store's**, the same as the other backends; rows past their time
//!   are swept from the file at open and once a minute.
//! - **Locks stay in memory**: they exist to keep processes of a cluster apart, and a lock of
//!   a killed process must not outlive it.
//! - **An I/O error is outlived.** After a failed write (a full disk) redb refuses every
//!   later transaction until the database is closed and opened again. The writer does that
//!   itself, at once and then before each later write until it succeeds, so a disk that has
//!   room again takes writes again without a restart; what was committed before is all there
//!   (redb's commit is atomic), what failed was answered as failed.
//!
//! The gateway keeps more than tokens in the same file (its callback queue): [`LocalStore::write`]
//! and [`LocalStore::read`] hand it transactions of this database, and [`LocalStore::sweeper`]
//! adds its own expiry.

use std::path::Path;
use std::sync::mpsc;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use async_trait::async_trait;
use redb::{
    Database, ReadTransaction, ReadableDatabase, ReadableTable, TableDefinition, WriteTransaction,
};

use super::{Cached, MemoryStore, Store, StoreError};
use crate::Clock;

/// Token key -> (fetched_at, expires_at, value), Unix ms.
const TOKENS: TableDefinition<&str, (u64, u64, &str)> = TableDefinition::new("tokens");
/// Fact key -> (expires_at, value), Unix ms.
const FACTS: TableDefinition<&str, (u64, &str)> = TableDefinition::new("facts");

/// How often expired rows are swept from the file.
const SWEEP_EVERY: Duration = Duration::from_secs(60);
/// At most this many waiting writes share one transaction.
const MAX_BATCH: usize = 512;

/// A write given to the writer thread: run inside a transaction (perhaps again, alone, if the
/// batch it shared failed), then told how the commit went.
trait Job: Send {
    fn apply(&mut self, txn: &WriteTransaction) -> Result<(), redb::Error>;
    fn done(self: Box<Self>, committed: Result<(), StoreError>);
}

struct Call<F, R> {
    f: F,
    result: Option<R>,
    reply: tokio::sync::oneshot::Sender<Result<R, StoreError>>,
}

impl<F, R> Job for Call<F, R>
where
    F: FnMut(&WriteTransaction) -> Result<R, redb::Error> + Send,
    R: Send,
{
    fn apply(&mut self, txn: &WriteTransaction) -> Result<(), redb::Error> {
        self.result = Some((self.f)(txn)?);
        Ok(())
    }

    fn done(self: Box<Self>, committed: Result<(), StoreError>) {
        let Call { result, reply, .. } = *self;
        let r = committed
            .and_then(|()| result.ok_or_else(|| StoreError("local: the write did not run".into())));
        let _ = reply.send(r);
    }
}

/// Deletes what has expired by `now` (Unix ms) in one table of the caller's.
pub type Sweeper = Box<dyn Fn(&WriteTransaction, u64) -> Result<(), redb::Error> + Send>;

/// Opens the database again (the same file, the same way) after an I/O error.
pub type Opener = Arc<dyn Fn() -> Result<Database, redb::DatabaseError> + Send + Sync>;

/// The open database; `None` while it is being opened again after an I/O error (or could not
/// be). Readers clone the `Arc` out and let go of the slot at once.
#[derive(Clone)]
struct Slot(Arc<RwLock<Option<Arc<Database>>>>);

impl Slot {
    fn new(db: Database) -> Slot {
        Slot(Arc::new(RwLock::new(Some(Arc::new(db)))))
    }

    fn get(&self) -> Result<Arc<Database>, StoreError> {
        self.0
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
            .ok_or_else(|| err("the database is being opened again after an I/O error"))
    }

    /// Closes the database and opens it again: waits (a few seconds at most) for readers to
    /// let go of it, since the file's lock is only released when the last handle is dropped.
    fn reopen(&self, opener: &Opener) -> Result<(), StoreError> {
        let old = self.0.write().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(mut old) = old {
            let mut waited = Duration::ZERO;
            loop {
                match Arc::try_unwrap(old) {
                    Ok(db) => {
                        drop(db);
                        break;
                    }
                    Err(still) if waited < REOPEN_WAIT => {
                        old = still;
                        std::thread::sleep(Duration::from_millis(10));
                        waited += Duration::from_millis(10);
                    }
                    Err(still) => {
                        // Put back: the next attempt waits again.
                        *self.0.write().unwrap_or_else(|p| p.into_inner()) = Some(still);
                        return Err(err("the database is still in use; not opened again yet"));
                    }
                }
            }
        }
        let db = opener().map_err(err)?;
        *self.0.write().unwrap_or_else(|p| p.into_inner()) = Some(Arc::new(db));
        Ok(())
    }
}

/// How long a reopen waits for reads in flight to let go of the database.
const REOPEN_WAIT: Duration = Duration::from_secs(5);

pub struct LocalStore {
    memory: MemoryStore,
    db: Slot,
    /// `None` once closing: the writer thread then finishes what it has and ends.
    jobs: Option<mpsc::Sender<Box<dyn Job>>>,
    writer: Option<std::thread::JoinHandle<()>>,
    sweepers: Arc<Mutex<Vec<Sweeper>>>,
    clock: Clock,
    went_back: bool,
    /// When a write last failed (Unix ms; 0: never): [`Store::ping`] is not ready for a while
    /// after, whatever its own small write does.
    failed_at: std::sync::atomic::AtomicU64,
}

/// How long after a failed write the store is not ready: a full disk takes the probe's small
/// write again once the database is reopened, while the writes that matter (a callback, an
/// install) still fail.
const NOT_READY_AFTER_FAILURE: Duration = Duration::from_secs(30);

/// The file is released when the store is dropped: the writer has committed everything it was
/// given, and the same process may open the file again at once.
impl Drop for LocalStore {
    fn drop(&mut self) {
        self.jobs.take();
        if let Some(w) = self.writer.take() {
            let _ = w.join();
        }
    }
}

fn err(e: impl std::fmt::Display) -> StoreError {
    StoreError(format!("local: {e}"))
}

impl LocalStore {
    /// Opens (or creates) the database at `path`. Fails when another process has it open.
    ///
    /// Every page of the file is checked on open (a damaged file is refused with a clear error
    /// rather than read), and an open that had to go back to the commit before the last one
    /// because that commit's pages do not verify (a damaged disk) says so at ERROR: what that
    /// last write held, a callback answered `success` maybe, is gone. A commit record torn by a
    /// crash is one never acknowledged (a commit returns once it is synced), and going back
    /// from it loses nothing. Not seen: a commit record damaged on disk after it was synced,
    /// which redb passes over for the one before without telling (only a second sync per
    /// write, redb's two-phase commit, would refuse it instead). A new file is readable by its
    /// owner only: it holds every corp's tokens and permanent codes.
    pub fn open(path: &Path, clock: Clock) -> Result<LocalStore, StoreError> {
        let owned = path.to_owned();
        let existed = path.exists();
        let went_back = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = went_back.clone();
        let opener: Opener = Arc::new(move || {
            let flag = flag.clone();
            let mut builder = Database::builder();
            builder.set_check_integrity_on_open(true);
            // redb asks at 0.3 only when the last commit does not verify and it falls back.
            builder.set_repair_callback(move |session| {
                if (session.progress() - 0.3).abs() < 1e-9 {
                    flag.store(true, std::sync::atomic::Ordering::SeqCst);
                }
            });
            builder.create(&owned)
        });
        let mut store = Self::open_with(path, clock, opener)?;
        if !existed {
            owner_only(path);
        } else if readable_by_others(path) {
            tracing::warn!(path = %path.display(), "the local store is readable by other users: it holds every corp's tokens and permanent codes (chmod 600)");
        }
        store.went_back = went_back.load(std::sync::atomic::Ordering::SeqCst);
        if store.went_back {
            tracing::error!(path = %path.display(), "local store: its last write did not verify (torn by a crash, or the disk damaged it): the store went back to the write before; what the last one held is lost");
        }
        Ok(store)
    }

    /// Whether opening went back to the commit before the last one (see [`LocalStore::open`]).
    pub fn went_back(&self) -> bool {
        self.went_back
    }

    /// [`LocalStore::open`] with the way the database is opened (at first, and again after an
    /// I/O error) given: tests open it over a storage that fails on demand.
    pub fn open_with(path: &Path, clock: Clock, opener: Opener) -> Result<LocalStore, StoreError> {
        // An empty file is not a database: one cut to nothing (what it held is gone), or made
        // by hand. Starting on it as a new one would hide the loss.
        if std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.len() == 0) {
            return Err(StoreError(format!(
                "local: {} is an empty file, not a store (cut short, or made by hand): remove \
                 it to start with an empty store",
                path.display()
            )));
        }
        let db = opener().map_err(|e| match e {
            redb::DatabaseError::DatabaseAlreadyOpen => StoreError(format!(
                "local: {} is in use by another process (one instance per file; several instances share backend = \"redis\")",
                path.display()
            )),
            // A file shorter than its own header says (cut short by a copy, a full disk).
            redb::DatabaseError::Storage(redb::StorageError::Io(io))
                if io.kind() == std::io::ErrorKind::UnexpectedEof =>
            {
                StoreError(format!(
                    "local: {} ends before the store it holds does (cut short: a partial copy, a \
                     full disk): restore it from a backup, or remove it to start with an empty \
                     store",
                    path.display()
                ))
            }
            e => StoreError(format!("local: {}: {e}", path.display())),
        })?;
        let memory = MemoryStore::new(clock.clone());
        let txn = db.begin_write().map_err(err)?;
        {
            // Created empty on first use, so that readers never meet a missing table.
            txn.open_table(TOKENS).map_err(err)?;
            txn.open_table(FACTS).map_err(err)?;
        }
        txn.commit().map_err(err)?;
        let db = Slot::new(db);
        let sweepers: Arc<Mutex<Vec<Sweeper>>> = Arc::new(Mutex::new(vec![Box::new(sweep_own)]));
        let (jobs, rx) = mpsc::channel();
        let mut store = LocalStore {
            memory,
            db: db.clone(),
            jobs: Some(jobs),
            writer: None,
            sweepers: sweepers.clone(),
            clock: clock.clone(),
            went_back: false,
            failed_at: std::sync::atomic::AtomicU64::new(0),
        };
        store.sweep_now()?;
        store.load()?;
        let file = FileId::of(path);
        store.writer = Some(
            std::thread::Builder::new()
                .name("wgw-local-store".into())
                .spawn(move || writer(db, opener, rx, sweepers, clock, file))
                .map_err(err)?,
        );
        Ok(store)
    }

    /// Fills the memory store with what the file holds.
    fn load(&self) -> Result<(), StoreError> {
        let now = self.clock.now_ms();
        let txn = self.db.get()?.begin_read().map_err(err)?;
        let tokens = txn.open_table(TOKENS).map_err(err)?;
        for row in tokens.iter().map_err(err)? {
            let (k, v) = row.map_err(err)?;
            let (fetched_at, expires_at, value) = v.value();
            self.memory.insert_token(
                k.value(),
                Cached {
                    value: value.into(),
                    fetched_at,
                    expires_at,
                },
            );
        }
        let facts = txn.open_table(FACTS).map_err(err)?;
        for row in facts.iter().map_err(err)? {
            let (k, v) = row.map_err(err)?;
            let (until, value) = v.value();
            if until > now {
                self.memory.insert_fact(k.value(), value, until);
            }
        }
        Ok(())
    }

    /// Runs `f` in a write transaction of this database and returns once it is committed and
    /// on disk. `f` may run twice (a batch that failed is retried one write at a time): it
    /// must only depend on what the transaction shows it.
    pub async fn write<R, F>(&self, f: F) -> Result<R, StoreError>
    where
        F: FnMut(&WriteTransaction) -> Result<R, redb::Error> + Send + 'static,
        R: Send + 'static,
    {
        let (reply, rx) = tokio::sync::oneshot::channel();
        self.jobs
            .as_ref()
            .ok_or_else(|| err("closing"))?
            .send(Box::new(Call {
                f,
                result: None,
                reply,
            }))
            .map_err(|_| err("the writer thread stopped"))?;
        let done = rx.await.map_err(|_| err("the writer thread stopped"))?;
        if done.is_err() {
            self.failed_at
                .store(self.clock.now_ms(), std::sync::atomic::Ordering::Relaxed);
        }
        done
    }

    /// Runs `f` on a read transaction, off the async workers.
    pub async fn read<R, F>(&self, f: F) -> Result<R, StoreError>
    where
        F: FnOnce(&ReadTransaction) -> Result<R, redb::Error> + Send + 'static,
        R: Send + 'static,
    {
        let db = self.db.get()?;
        tokio::task::spawn_blocking(move || {
            let txn = db.begin_read().map_err(err)?;
            f(&txn).map_err(err)
        })
        .await
        .map_err(err)?
    }

    /// Adds the expiry of a table of the caller's to the sweep.
    pub fn sweeper(&self, s: Sweeper) {
        self.sweepers
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(s);
    }

    /// Sweeps expired rows now (also done once a minute by the writer).
    pub fn sweep_now(&self) -> Result<(), StoreError> {
        let txn = self.db.get()?.begin_write().map_err(err)?;
        let now = self.clock.now_ms();
        for s in self
            .sweepers
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
        {
            s(&txn, now).map_err(err)?;
        }
        txn.commit().map_err(err)
    }
}

fn sweep_own(txn: &WriteTransaction, now: u64) -> Result<(), redb::Error> {
    // A token is kept while the cache may still read it: until its expiry.
    txn.open_table(TOKENS)?
        .retain(|_, (_, expires_at, _)| expires_at > now)?;
    txn.open_table(FACTS)?.retain(|_, (until, _)| until > now)?;
    Ok(())
}

/// A failure was logged since the last recovery that was: the next recovery is said whatever
/// its throttle, so that the last line an operator reads is not a failure that has ended.
static FAILURE_SAID: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Whether a line of the writer's failures (`kind`) is due: on a full disk each refused write
/// would otherwise write three (failed, opened again, failed again), on that same disk. A
/// recovery (`"reopened"`) is due, too, after any failure said since the last one said.
fn said(kind: &'static str) -> bool {
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    said_at(kind, now_ms)
}

fn said_at(kind: &'static str, now_ms: u64) -> bool {
    use std::sync::atomic::Ordering;
    static SAID: std::sync::LazyLock<crate::Throttle<&'static str>> =
        std::sync::LazyLock::new(crate::Throttle::per_minute);
    let due = SAID.due(kind, now_ms);
    if kind == "reopened" {
        return FAILURE_SAID.swap(false, Ordering::Relaxed) || due;
    }
    if due {
        FAILURE_SAID.store(true, Ordering::Relaxed);
    }
    due
}

/// The one writer: waits for a write, takes every other one waiting, commits them together,
/// then answers each. Sweeps once a minute. After an I/O error it opens the database again
/// before the next write (at most once a second while that fails; writes meanwhile fail at
/// once).
fn writer(
    db: Slot,
    opener: Opener,
    rx: mpsc::Receiver<Box<dyn Job>>,
    sweepers: Arc<Mutex<Vec<Sweeper>>>,
    clock: Clock,
    file: Option<FileId>,
) {
    let mut last_sweep = clock.now_ms();
    // Since when the database needs opening again, and when that was last tried.
    let mut broken: Option<std::time::Instant> = None;
    let mut last_try: Option<std::time::Instant> = None;
    loop {
        let first = match rx.recv_timeout(SWEEP_EVERY) {
            Ok(job) => Some(job),
            Err(mpsc::RecvTimeoutError::Timeout) => None,
            Err(mpsc::RecvTimeoutError::Disconnected) => return,
        };
        let mut batch: Vec<Box<dyn Job>> = first.into_iter().collect();
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        if let Some(since) = broken {
            let due = last_try.is_none_or(|t| t.elapsed() >= REOPEN_EVERY);
            if due && !batch.is_empty() {
                last_try = Some(std::time::Instant::now());
                match db.reopen(&opener) {
                    Ok(()) => {
                        if said("reopened") {
                            tracing::warn!(
                                after_ms = since.elapsed().as_millis() as u64,
                                "local store: opened again after an I/O error; writes go on \
                                 (logged once a minute)"
                            );
                        }
                        broken = None;
                    }
                    Err(e) => {
                        if said("reopen failed") {
                            tracing::warn!(error = %e, "local store: opening it again failed; writes fail until it succeeds (logged once a minute)");
                        }
                    }
                }
            }
        }
        // The file removed or replaced under the open database: writes would go to a file
        // nobody opens again, and be lost at the restart. Refused instead, loudly (the
        // callbacks are then not answered `success`, `/readyz` says so).
        if let Some(why) = file.as_ref().and_then(FileId::gone) {
            if !batch.is_empty() {
                tracing::error!(%why, "local store: writes refused");
                fail(batch, err(why));
            }
            continue;
        }
        if !batch.is_empty() {
            match db.get() {
                Ok(d) if broken.is_none() => {
                    if commit_batch(&d, batch) {
                        if said("io error") {
                            tracing::error!("local store: an I/O error (a full or failing disk?); the database is opened again before the next write (logged once a minute)");
                        }
                        broken = Some(std::time::Instant::now());
                        last_try = None;
                    }
                }
                Ok(_) => fail(
                    batch,
                    err("an I/O error; the database is not open again yet"),
                ),
                Err(e) => fail(batch, e),
            }
        }
        let now = clock.now_ms();
        if broken.is_none() && now.saturating_sub(last_sweep) >= SWEEP_EVERY.as_millis() as u64 {
            last_sweep = now;
            let swept = (|| -> Result<(), redb::Error> {
                let txn = db
                    .get()
                    .map_err(|e| redb::Error::Io(std::io::Error::other(e.0)))?
                    .begin_write()?;
                for s in sweepers.lock().unwrap_or_else(|p| p.into_inner()).iter() {
                    s(&txn, now)?;
                }
                txn.commit()?;
                Ok(())
            })();
            if let Err(e) = swept {
                tracing::warn!(error = %e, "local store: sweeping expired rows failed");
                if is_io(&e) {
                    broken = Some(std::time::Instant::now());
                    last_try = None;
                }
            }
        }
    }
}

/// The file the database was opened on, by device and inode.
struct FileId {
    path: std::path::PathBuf,
    dev: u64,
    ino: u64,
}

impl FileId {
    fn of(path: &Path) -> Option<FileId> {
        use std::os::unix::fs::MetadataExt;
        let m = std::fs::metadata(path).ok()?;
        Some(FileId {
            path: path.to_owned(),
            dev: m.dev(),
            ino: m.ino(),
        })
    }

    /// Why the path no longer names the open file, if it does not.
    fn gone(&self) -> Option<String> {
        use std::os::unix::fs::MetadataExt;
        match std::fs::metadata(&self.path) {
            Ok(m) if m.dev() == self.dev && m.ino() == self.ino => None,
            Ok(_) => Some(format!(
                "{} was replaced by another file while the gateway ran",
                self.path.display()
            )),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Some(format!(
                "{} was removed while the gateway ran (what was written since is in the removed file only)",
                self.path.display()
            )),
            // Not readable now (permissions, a passing error): the open file decides.
            Err(_) => None,
        }
    }
}

fn owner_only(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    let _ = std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600));
}

fn readable_by_others(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).is_ok_and(|m| m.permissions().mode() & 0o004 != 0)
}

/// While the database cannot be opened again, a write tries it at most this often.
const REOPEN_EVERY: Duration = Duration::from_secs(1);

/// An error after which redb takes no more transactions until the database is opened again.
fn is_io(e: &redb::Error) -> bool {
    matches!(e, redb::Error::Io(_) | redb::Error::PreviousIo)
}

fn fail(batch: Vec<Box<dyn Job>>, e: StoreError) {
    for job in batch {
        job.done(Err(e.clone()));
    }
}

/// Commits `batch` (together, or each alone when together failed) and answers each job;
/// `true` when an I/O error left the database needing to be opened again.
fn commit_batch(db: &Database, mut batch: Vec<Box<dyn Job>>) -> bool {
    let together = (|| -> Result<(), redb::Error> {
        let txn = db.begin_write()?;
        for job in batch.iter_mut() {
            job.apply(&txn)?;
        }
        txn.commit()?;
        Ok(())
    })();
    match together {
        Ok(()) => {
            for job in batch {
                job.done(Ok(()));
            }
            false
        }
        Err(e) if is_io(&e) => {
            if said("write failed") {
                tracing::warn!(error = %e, "local store: a write failed (logged once a minute)");
            }
            fail(batch, err(&e));
            true
        }
        // One bad write must not fail the others: each alone, in its own transaction.
        Err(_) if batch.len() > 1 => {
            let mut io = false;
            for job in batch {
                if io {
                    fail(
                        vec![job],
                        err("an I/O error; the database is not open again yet"),
                    );
                } else {
                    io = commit_batch(db, vec![job]);
                }
            }
            io
        }
        Err(e) => {
            tracing::warn!(error = %e, "local store: a write failed");
            fail(batch, err(&e));
            false
        }
    }
}

#[async_trait]
impl Store for LocalStore {
    async fn get(&self, key: &str) -> Result<Option<Cached>, StoreError> {
        self.memory.get(key).await
    }

    async fn set(&self, key: &str, value: &Cached) -> Result<(), StoreError> {
        self.memory.set(key, value).await?;
        let (k, v) = (key.to_owned(), value.clone());
        // A token held in memory serves this process; the file only spares a gettoken after a
        // restart (SPEC section 21: tokens may be lost, they are fetched again). A full disk
        // must not fail the call the token was fetched for: the write's failure is logged
        // (and `/readyz` says it), the token is used.
        let _ = self
            .write(move |txn| {
                txn.open_table(TOKENS)?
                    .insert(k.as_str(), (v.fetched_at, v.expires_at, &*v.value))?;
                Ok(())
            })
            .await;
        Ok(())
    }

    async fn expire_if(&self, key: &str, value: &str) -> Result<bool, StoreError> {
        let expired = self.memory.expire_if(key, value).await?;
        if expired {
            let (k, v) = (key.to_owned(), value.to_owned());
            self.write(move |txn| {
                let mut t = txn.open_table(TOKENS)?;
                // The file holds what memory held: compare anyway, it costs nothing.
                let same = t.get(k.as_str())?.is_some_and(|g| g.value().2 == v);
                if same {
                    t.remove(k.as_str())?;
                }
                Ok(())
            })
            .await?;
        }
        Ok(expired)
    }

    async fn lock(&self, key: &str, ttl: Duration) -> Result<Option<String>, StoreError> {
        self.memory.lock(key, ttl).await
    }

    async fn unlock(&self, key: &str, lock_id: &str) -> Result<(), StoreError> {
        self.memory.unlock(key, lock_id).await
    }

    async fn get_fact(&self, key: &str) -> Result<Option<String>, StoreError> {
        self.memory.get_fact(key).await
    }

    async fn get_facts(&self, keys: &[&str]) -> Result<Vec<Option<String>>, StoreError> {
        self.memory.get_facts(keys).await
    }

    async fn put_fact(&self, key: &str, value: &str, ttl: Duration) -> Result<(), StoreError> {
        self.memory.put_fact(key, value, ttl).await?;
        let until = self
            .clock
            .now_ms()
            .saturating_add(u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX));
        let (k, v) = (key.to_owned(), value.to_owned());
        self.write(move |txn| {
            let mut t = txn.open_table(FACTS)?;
            if ttl.is_zero() {
                t.remove(k.as_str())?;
            } else {
                t.insert(k.as_str(), (until, v.as_str()))?;
            }
            Ok(())
        })
        .await
    }

    /// Memory decides (this process owns the file); a won claim is committed like any fact,
    /// so that a restart does not let the same claim be won twice (a login state's callback).
    async fn claim(&self, key: &str, ttl: Duration) -> Result<bool, StoreError> {
        if !self.memory.claim(key, ttl).await? {
            return Ok(false);
        }
        let until = self
            .clock
            .now_ms()
            .saturating_add(u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX));
        let k = key.to_owned();
        self.write(move |txn| {
            txn.open_table(FACTS)?.insert(k.as_str(), (until, "1"))?;
            Ok(())
        })
        .await?;
        Ok(true)
    }

    /// Every fact is written through the memory in front of the file.
    fn facts_version(&self) -> Option<u64> {
        self.memory.facts_version()
    }

    /// Every token as well.
    fn tokens_version(&self) -> Option<u64> {
        self.memory.tokens_version()
    }

    async fn ping(&self) -> Result<(), StoreError> {
        // A write that commits: the disk takes writes, the writer thread lives.
        self.write(|_| Ok(())).await?;
        let failed = self.failed_at.load(std::sync::atomic::Ordering::Relaxed);
        let now = self.clock.now_ms();
        // (A clock stepped back since the failure ends the wait rather than stretching it.)
        let since = now.saturating_sub(failed);
        if failed != 0 && now >= failed && since < NOT_READY_AFTER_FAILURE.as_millis() as u64 {
            return Err(err(format!(
                "a write failed {}s ago (a full or failing disk?)",
                since / 1000
            )));
        }
        Ok(())
    }

    fn name(&self) -> &'static str {
        "local"
    }
}

#[cfg(test)]
mod tests;
