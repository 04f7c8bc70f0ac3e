//! Runs tests/python (pytest, an unmodified wechatpy 1.8) against a gateway and an emulator
//! started here. Needs the virtualenv of `scripts/python-deps.sh` (`make deps`); without it
//! the test says so and passes, unless WGW_REQUIRE_PYTHON=1 makes it fail.

mod common;

use std::path::Path;
use std::process::Command;

use common::world::{qyapi_apps, World};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wechatpy_drives_the_qyapi_endpoint_unchanged() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let python = root.join(".venv/bin/python");
    if !python.exists() {
        let msg = "no .venv: run scripts/python-deps.sh (make deps) to run the wechatpy tests";
        assert!(std::env::var_os("WGW_REQUIRE_PYTHON").is_none(), "{msg}");
        eprintln!("skipped: {msg}");
        return;
    }
    let w = World::new().apps(qyapi_apps()).qyapi().start().await;
    let qyapi = w.qyapi("");
    let emu = w.emu.base_url();
    let out = tokio::task::spawn_blocking(move || {
        Command::new(python)
            .args([
                "-m",
                "pytest",
                "-q",
                "-p",
                "no:cacheprovider",
                "tests/python",
            ])
            .current_dir(root)
            .env("WGW_QYAPI_URL", qyapi)
            .env("WGW_EMULATOR_URL", emu)
            .output()
            .expect("pytest runs")
    })
    .await
    .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success(),
        "pytest failed:\n{text}\ngateway log:\n{}",
        w.gw().log()
    );
    assert!(text.contains("4 passed"), "{text}");
}
