//! The `wecom-emulator` binary.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

const BIN: &str = env!("CARGO_BIN_EXE_wecom-emulator");

#[test]
fn print_scenario_prints_the_default() {
    let out = Command::new(BIN).arg("--print-scenario").output().unwrap();
    assert!(out.status.success());
    assert_eq!(
        String::from_utf8(out.stdout).unwrap(),
        emulator::Scenario::default_toml()
    );
}

#[test]
fn a_bad_scenario_file_exits_2() {
    let path = std::env::temp_dir().join(format!("emu-bad-{}.toml", std::process::id()));
    std::fs::write(&path, "[settings]\nnope = 1\n").unwrap();
    let out = Command::new(BIN)
        .arg("--scenario")
        .arg(&path)
        .arg("--listen")
        .arg("127.0.0.1:0")
        .output()
        .unwrap();
    std::fs::remove_file(&path).ok();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("nope"));
}

#[test]
fn prints_its_address_and_serves() {
    let mut child = Command::new(BIN)
        .args(["--listen", "127.0.0.1:0"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let base = line.trim().rsplit(' ').next().unwrap().to_string();
    assert!(base.starts_with("http://127.0.0.1:"), "{line}");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let body = rt.block_on(async {
        reqwest::get(format!("{base}/_emulator/healthz"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    });
    child.kill().ok();
    child.wait().ok();
    assert_eq!(body, "ok");
}

#[test]
fn a_port_zero_is_reported_in_the_ports_file() {
    let dir = std::env::temp_dir().join(format!("emu-ports-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("ports.json");
    let mut child = Command::new(BIN)
        .args(["--listen", "127.0.0.1:0", "--ports-file"])
        .arg(&path)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    // The stdout line comes before the file; the file is complete once it exists.
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let text = loop {
        if let Ok(t) = std::fs::read_to_string(&path) {
            break t;
        }
        assert!(std::time::Instant::now() < deadline, "no ports file");
        std::thread::sleep(std::time::Duration::from_millis(10));
    };
    child.kill().ok();
    child.wait().ok();
    std::fs::remove_dir_all(&dir).ok();
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    let base = v["base_url"].as_str().unwrap();
    assert_eq!(line.trim(), format!("wecom-emulator listening on {base}"));
    let listen = v["listen"].as_str().unwrap();
    assert_eq!(base, format!("http://{listen}"));
    assert!(!listen.ends_with(":0"), "{listen}");
}
