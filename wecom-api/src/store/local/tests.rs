use super::*;
use redb::ReadableTableMetadata;

/// A database file of its own, removed at the end.
struct TempFile(std::path::PathBuf);

impl TempFile {
    fn new(tag: &str) -> TempFile {
        let p = std::env::temp_dir().join(format!(
            "wecom-api-local-{tag}-{}-{:x}.db",
            std::process::id(),
            rand::random::<u64>()
        ));
        TempFile(p)
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

fn cached(v: &str, expires_at: u64) -> Cached {
    Cached {
        value: v.into(),
        fetched_at: 1,
        expires_at,
    }
}

#[tokio::test]
async fn tokens_and_facts_survive_a_reopen_and_expired_facts_do_not() {
    let f = TempFile::new("reopen");
    let clock = Clock::system();
    let far = clock.now_ms() + 3_600_000;
    {
        let s = LocalStore::open(&f.0, clock.clone()).unwrap();
        s.set("t", &cached("token-1", far)).await.unwrap();
        s.set("gone", &cached("token-x", far)).await.unwrap();
        assert!(s.expire_if("gone", "token-x").await.unwrap());
        s.put_fact("f", "kept", Duration::from_secs(600))
            .await
            .unwrap();
        s.put_fact("short", "lapses", Duration::from_secs(1))
            .await
            .unwrap();
        s.put_fact("forgotten", "v", Duration::from_secs(600))
            .await
            .unwrap();
        s.forget_fact("forgotten").await.unwrap();
    }
    clock.advance(Duration::from_secs(2));
    let s = LocalStore::open(&f.0, clock.clone()).unwrap();
    assert_eq!(s.get("t").await.unwrap(), Some(cached("token-1", far)));
    assert_eq!(
        s.get("gone").await.unwrap(),
        None,
        "compare-and-expire is kept"
    );
    assert_eq!(s.get_fact("f").await.unwrap().as_deref(), Some("kept"));
    assert_eq!(
        s.get_fact("short").await.unwrap(),
        None,
        "lapsed while closed"
    );
    assert_eq!(s.get_fact("forgotten").await.unwrap(), None);
    clock.advance(Duration::from_secs(600));
    assert_eq!(s.get_fact("f").await.unwrap(), None, "lapses like memory's");
}

#[tokio::test]
async fn a_claim_is_won_once_also_across_a_restart_until_it_lapses() {
    let f = TempFile::new("claim");
    let clock = Clock::system();
    {
        let s = LocalStore::open(&f.0, clock.clone()).unwrap();
        let before = s
            .facts_version()
            .expect("an in-process store has a facts version");
        assert!(s.claim("state", Duration::from_secs(60)).await.unwrap());
        let claimed = s.facts_version().unwrap();
        assert_ne!(claimed, before, "a claim is a write");
        assert!(!s.claim("state", Duration::from_secs(60)).await.unwrap());
        assert_eq!(
            s.facts_version(),
            Some(claimed),
            "a lost claim writes nothing"
        );
        s.put_fact("f", "v", Duration::from_secs(60)).await.unwrap();
        assert_ne!(s.facts_version(), Some(claimed));
    }
    let s = LocalStore::open(&f.0, clock.clone()).unwrap();
    assert!(
        !s.claim("state", Duration::from_secs(60)).await.unwrap(),
        "kept in the file"
    );
    clock.advance(Duration::from_secs(60));
    assert!(
        s.claim("state", Duration::from_secs(60)).await.unwrap(),
        "lapsed"
    );
}

#[tokio::test]
async fn one_process_per_file() {
    let f = TempFile::new("exclusive");
    let _first = LocalStore::open(&f.0, Clock::system()).unwrap();
    let second = LocalStore::open(&f.0, Clock::system()).err().unwrap();
    assert!(second.to_string().contains("in use"), "{second}");
}

#[tokio::test]
async fn concurrent_writes_share_commits_and_all_land() {
    let f = TempFile::new("batch");
    let clock = Clock::system();
    let far = clock.now_ms() + 3_600_000;
    {
        let s = Arc::new(LocalStore::open(&f.0, clock.clone()).unwrap());
        let writes = (0..200).map(|i| {
            let s = s.clone();
            tokio::spawn(async move {
                s.set(&format!("k{i}"), &cached(&format!("v{i}"), far))
                    .await
                    .unwrap()
            })
        });
        for w in writes {
            w.await.unwrap();
        }
    }
    let s = LocalStore::open(&f.0, clock).unwrap();
    for i in 0..200 {
        assert_eq!(
            s.get(&format!("k{i}")).await.unwrap().map(|c| c.value),
            Some(format!("v{i}").into())
        );
    }
}

#[tokio::test]
async fn a_failing_write_fails_alone() {
    let f = TempFile::new("failing");
    let s = Arc::new(LocalStore::open(&f.0, Clock::system()).unwrap());
    let bad = {
        let s = s.clone();
        tokio::spawn(async move {
            s.write(|_txn| -> Result<(), redb::Error> {
                Err(redb::Error::Corrupted("refused on purpose".into()))
            })
            .await
        })
    };
    let good = s.put_fact("f", "v", Duration::from_secs(60));
    let (bad, good) = tokio::join!(bad, good);
    assert!(bad.unwrap().is_err());
    good.unwrap();
    assert_eq!(s.get_fact("f").await.unwrap().as_deref(), Some("v"));
}

#[tokio::test]
async fn the_sweep_deletes_expired_rows_from_the_file() {
    let f = TempFile::new("sweep");
    let clock = Clock::system();
    let s = LocalStore::open(&f.0, clock.clone()).unwrap();
    s.put_fact("old", "v", Duration::from_secs(1))
        .await
        .unwrap();
    s.put_fact("new", "v", Duration::from_secs(600))
        .await
        .unwrap();
    s.set("tok", &cached("t", clock.now_ms() + 1000))
        .await
        .unwrap();
    clock.advance(Duration::from_secs(2));
    s.sweep_now().unwrap();
    let left = s
        .read(|txn| {
            let facts = txn.open_table(FACTS)?.len()?;
            let tokens = txn.open_table(TOKENS)?.len()?;
            Ok((facts, tokens))
        })
        .await
        .unwrap();
    assert_eq!(left, (1, 0));
}

/// A store file cut short (a partial copy) is named as such, whatever length it was cut to
/// (redb's own "failed to fill whole buffer" said nothing of the kind).
#[tokio::test]
async fn a_file_cut_short_is_refused_and_said_so() {
    let f = TempFile::new("cut");
    {
        let s = LocalStore::open(&f.0, Clock::system()).unwrap();
        s.put_fact("k", "v", std::time::Duration::from_secs(60))
            .await
            .unwrap();
    }
    let whole = std::fs::read(&f.0).unwrap();
    for len in [64, 320, 4096, whole.len() / 2] {
        std::fs::write(&f.0, &whole[..len]).unwrap();
        match LocalStore::open(&f.0, Clock::system()) {
            // Below redb's header, this store's own words; past it, redb's.
            Err(e) => assert!(
                e.to_string().contains("cut short") || e.to_string().contains("truncated"),
                "{len} of {}: {e}",
                whole.len()
            ),
            // redb may take what is left as a store it repairs: nothing to say then.
            Ok(_) => {}
        }
    }
}

#[tokio::test]
async fn an_empty_file_is_refused_not_taken_for_a_new_store() {
    let f = TempFile::new("empty");
    std::fs::write(&f.0, b"").unwrap();
    let e = LocalStore::open(&f.0, Clock::system())
        .err()
        .expect("refused");
    assert!(e.to_string().contains("is an empty file"), "{e}");
    std::fs::remove_file(&f.0).unwrap();
    assert!(
        LocalStore::open(&f.0, Clock::system()).is_ok(),
        "a missing file is made"
    );
}

/// The file's storage, failing every write and sync while `full` is set: a disk that filled.
#[derive(Debug)]
struct Filling {
    file: redb::backends::FileBackend,
    full: Arc<std::sync::atomic::AtomicBool>,
}

impl Filling {
    fn check(&self) -> std::io::Result<()> {
        if self.full.load(std::sync::atomic::Ordering::SeqCst) {
            return Err(std::io::Error::from(std::io::ErrorKind::StorageFull));
        }
        Ok(())
    }
}

type Range = std::ops::Bound<u64>;

impl redb::StorageBackend for Filling {
    fn len(&self) -> std::io::Result<u64> {
        self.file.len()
    }
    fn read(&self, offset: u64, out: &mut [u8]) -> std::io::Result<()> {
        self.file.read(offset, out)
    }
    fn set_len(&self, len: u64) -> std::io::Result<()> {
        self.check()?;
        self.file.set_len(len)
    }
    fn sync_data(&self) -> std::io::Result<()> {
        self.check()?;
        self.file.sync_data()
    }
    fn write(&self, offset: u64, data: &[u8]) -> std::io::Result<()> {
        self.check()?;
        self.file.write(offset, data)
    }
    fn close(&self) -> std::io::Result<()> {
        self.file.close()
    }
    fn try_lock_range(&self, s: Range, e: Range) -> Result<bool, redb::BackendError> {
        self.file.try_lock_range(s, e)
    }
    fn try_lock_shared_range(&self, s: Range, e: Range) -> Result<bool, redb::BackendError> {
        self.file.try_lock_shared_range(s, e)
    }
    fn lock_range(&self, s: Range, e: Range) -> Result<(), redb::BackendError> {
        self.file.lock_range(s, e)
    }
    fn lock_shared_range(&self, s: Range, e: Range) -> Result<(), redb::BackendError> {
        self.file.lock_shared_range(s, e)
    }
    fn unlock_range(&self, s: Range, e: Range) -> Result<(), redb::BackendError> {
        self.file.unlock_range(s, e)
    }
    fn query_lock_range(&self, s: Range, e: Range) -> Result<bool, redb::BackendError> {
        self.file.query_lock_range(s, e)
    }
}

/// Opens `path` on a backend that refuses every write while `full` is set (a full disk).
fn filling_opener(path: &std::path::Path, full: &Arc<std::sync::atomic::AtomicBool>) -> Opener {
    let (path, flag) = (path.to_path_buf(), full.clone());
    Arc::new(move || {
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(|e| redb::DatabaseError::Storage(redb::StorageError::Io(e)))?;
        let file = redb::backends::FileBackend::new(file)?;
        redb::Builder::new().create_with_backend(Filling {
            file,
            full: flag.clone(),
        })
    })
}

/// A disk that filled and then had room again: the writes while it was full fail (and say
/// so), readiness says so, and once there is room writes go on without a restart; what was
/// committed before and after is all in the file.
#[tokio::test]
async fn a_full_disk_is_outlived_without_a_restart() {
    let f = TempFile::new("full");
    let clock = Clock::system();
    let full = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let opener = filling_opener(&f.0, &full);
    let far = clock.now_ms() + 3_600_000;
    {
        let s = LocalStore::open_with(&f.0, clock.clone(), opener).unwrap();
        s.set("before", &cached("v1", far)).await.unwrap();
        full.store(true, std::sync::atomic::Ordering::SeqCst);
        let day = Duration::from_secs(86_400);
        assert!(s.put_fact("during", "x", day).await.is_err());
        // A token is used from memory all the same (lost at a restart, fetched again then):
        // a full disk does not fail the call it was fetched for.
        s.set("token", &cached("t", far)).await.unwrap();
        assert_eq!(s.get("token").await.unwrap(), Some(cached("t", far)));
        assert!(s.ping().await.is_err(), "not ready while the disk is full");
        full.store(false, std::sync::atomic::Ordering::SeqCst);
        // Opened again before the next write (tried at most once a second).
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while s.put_fact("after-fact", "y", day).await.is_err() {
            assert!(
                std::time::Instant::now() < deadline,
                "never took writes again"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        // Ready again only once no write has failed for a while: a full disk takes the
        // probe's small write while the writes that matter still fail.
        assert!(s.ping().await.is_err(), "ready just after a failed write");
        clock.advance(NOT_READY_AFTER_FAILURE + Duration::from_secs(1));
        s.ping().await.unwrap();
        s.set("after", &cached("v3", far)).await.unwrap();
        s.put_fact("fact", "kept", Duration::from_secs(600))
            .await
            .unwrap();
    }
    let s = LocalStore::open(&f.0, clock.clone()).unwrap();
    assert_eq!(s.get("before").await.unwrap(), Some(cached("v1", far)));
    assert_eq!(s.get("after").await.unwrap(), Some(cached("v3", far)));
    assert_eq!(s.get_fact("fact").await.unwrap().as_deref(), Some("kept"));
}

/// What a writer thread logs, caught (each test runs in a process of its own under nextest).
#[derive(Clone, Default)]
struct Caught(Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for Caught {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// On a full disk every refused write would say three lines (failed, opened again, failed
/// again), on that same disk: each is said once a minute.
#[tokio::test]
async fn a_full_disk_is_said_once_a_minute_not_once_a_write() {
    let caught = Caught::default();
    let writer = caught.clone();
    let _ = tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .try_init();
    let f = TempFile::new("full-log");
    let clock = Clock::system();
    let full = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let opener = filling_opener(&f.0, &full);
    let s = LocalStore::open_with(&f.0, clock.clone(), opener).unwrap();
    full.store(true, std::sync::atomic::Ordering::SeqCst);
    let day = Duration::from_secs(86_400);
    for i in 0..4 {
        assert!(s.put_fact(&format!("k{i}"), "x", day).await.is_err());
        // Past the writer's once-a-second reopening, so that each write goes the whole way.
        tokio::time::sleep(Duration::from_millis(1100)).await;
    }
    let log = String::from_utf8(caught.0.lock().unwrap().clone()).unwrap();
    for line in [
        "local store: a write failed",
        "local store: an I/O error",
        "local store: opened again after an I/O error",
        "local store: opening it again failed",
    ] {
        assert!(log.matches(line).count() <= 1, "{line}:\n{log}");
    }
    assert!(log.contains("local store: a write failed"), "{log}");
    // Room again: the recovery is said, the last word on the matter, even within the minute
    // of an earlier one.
    full.store(false, std::sync::atomic::Ordering::SeqCst);
    let recovered = "local store: opened again after an I/O error";
    let before = log.matches(recovered).count();
    s.put_fact("after", "x", day).await.unwrap();
    let log = String::from_utf8(caught.0.lock().unwrap().clone()).unwrap();
    assert_eq!(log.matches(recovered).count(), before + 1, "{log}");
    let last = log.lines().rfind(|l| l.contains("local store:")).unwrap();
    assert!(last.contains(recovered), "{log}");
}

/// A recovery is said after any failure said since the last recovery, within the minute of
/// an earlier recovery too: the last line is never a failure that has ended. Without a
/// failure said since, it keeps its once a minute.
#[test]
fn a_recovery_after_a_failure_said_is_said_whatever_its_minute() {
    let t = 1_000_000_000_000;
    assert!(super::said_at("write failed", t));
    assert!(super::said_at("reopened", t + 30_000));
    assert!(
        !super::said_at("write failed", t + 40_000),
        "within its minute"
    );
    assert!(
        !super::said_at("reopened", t + 45_000),
        "nothing said since the last"
    );
    assert!(super::said_at("write failed", t + 61_000));
    assert!(
        super::said_at("reopened", t + 62_000),
        "after a failure said"
    );
    assert!(!super::said_at("reopened", t + 63_000));
}

/// A new file holds every corp's tokens and permanent codes: its owner alone reads it.
#[tokio::test]
async fn a_new_file_is_readable_by_its_owner_only() {
    use std::os::unix::fs::PermissionsExt;
    let f = TempFile::new("mode");
    let _s = LocalStore::open(&f.0, Clock::system()).unwrap();
    let mode = std::fs::metadata(&f.0).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600, "{mode:o}");
}

/// The file removed (or replaced) while the store is open: writes would land in a file nobody
/// opens again, lost at the restart. They are refused with the reason, and `ping` (`/readyz`)
/// fails; reads of what was kept go on.
#[tokio::test]
async fn a_file_removed_under_the_store_refuses_writes() {
    let f = TempFile::new("removed");
    let s = LocalStore::open(&f.0, Clock::system()).unwrap();
    s.put_fact("before", "1", Duration::from_secs(600))
        .await
        .unwrap();
    std::fs::remove_file(&f.0).unwrap();
    let e = s
        .put_fact("after", "1", Duration::from_secs(600))
        .await
        .unwrap_err();
    assert!(e.0.contains("was removed"), "{e}");
    assert!(s.ping().await.is_err());
    assert_eq!(s.get_fact("before").await.unwrap().as_deref(), Some("1"));
    // Another file put in its place is not the open one either.
    std::fs::write(&f.0, b"other").unwrap();
    let e = s.ping().await.unwrap_err();
    assert!(e.0.contains("was replaced"), "{e}");
}

/// A page of the last commit damaged after a clean close (a failing disk): the open either
/// refuses the file, or goes back to the commit before and says so; it never serves the older
/// state silently, and never panics.
#[tokio::test]
async fn a_damaged_last_write_is_never_rolled_back_silently() {
    let f = TempFile::new("damaged");
    {
        let s = LocalStore::open(&f.0, Clock::system()).unwrap();
        for i in 0..20 {
            s.put_fact(&format!("k{i}"), "v", Duration::from_secs(3600))
                .await
                .unwrap();
        }
        s.put_fact("last", "v", Duration::from_secs(3600))
            .await
            .unwrap();
    }
    let original = std::fs::read(&f.0).unwrap();
    let pages = original.len() / 4096;
    let (mut refused, mut went_back) = (0, 0);
    for page in 0..pages {
        let copy = TempFile::new("damaged-copy");
        let mut bytes = original.clone();
        for (i, b) in bytes[page * 4096..(page + 1) * 4096].iter_mut().enumerate() {
            *b = (i as u8).wrapping_mul(151).wrapping_add(page as u8);
        }
        std::fs::write(&copy.0, &bytes).unwrap();
        let opened = std::panic::catch_unwind(|| LocalStore::open(&copy.0, Clock::system()));
        let Ok(opened) = opened else {
            panic!("page {page}: the open panicked");
        };
        let Ok(s) = opened else {
            refused += 1;
            continue;
        };
        if s.get_fact("last").await.unwrap().is_none() {
            assert!(
                s.went_back(),
                "page {page}: the last write is gone, silently"
            );
            went_back += 1;
        }
    }
    assert!(refused + went_back > 0, "no page of {pages} mattered");
}
