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
