use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use emulator::{Emulator, Scenario};

/// The WeCom / WeChat emulator alone.
#[derive(Parser)]
#[command(name = "wecom-emulator", version)]
struct Args {
    /// Address to listen on (port 0: any free port, reported on stdout and in `--ports-file`).
    #[arg(long, default_value = "127.0.0.1:9100")]
    listen: SocketAddr,
    /// Once listening, write `{"listen": ADDR, "base_url": URL}` here (whole, by a rename).
    #[arg(long)]
    ports_file: Option<PathBuf>,
    /// Scenario file (TOML); the built-in default scenario otherwise.
    #[arg(long)]
    scenario: Option<PathBuf>,
    /// Print the built-in default scenario and exit.
    #[arg(long)]
    print_scenario: bool,
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    if args.print_scenario {
        print!("{}", Scenario::default_toml());
        return ExitCode::SUCCESS;
    }
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .init();
    let scenario = match &args.scenario {
        None => Scenario::default(),
        Some(path) => match std::fs::read_to_string(path)
            .map_err(|e| e.to_string())
            .and_then(|t| Scenario::from_toml(&t).map_err(|e| e.to_string()))
        {
            Ok(s) => s,
            Err(e) => {
                eprintln!("wecom-emulator: {}: {e}", path.display());
                return ExitCode::from(2);
            }
        },
    };
    let emulator = match Emulator::start(args.listen, scenario).await {
        Ok(e) => e,
        Err(e) => {
            eprintln!("wecom-emulator: cannot listen on {}: {e}", args.listen);
            return ExitCode::FAILURE;
        }
    };
    println!("wecom-emulator listening on {}", emulator.base_url());
    if let Some(path) = &args.ports_file {
        if let Err(e) = write_ports_file(path, emulator.addr(), &emulator.base_url()) {
            eprintln!("wecom-emulator: --ports-file {}: {e}", path.display());
            emulator.shutdown().await;
            return ExitCode::FAILURE;
        }
    }
    let _ = tokio::signal::ctrl_c().await;
    emulator.shutdown().await;
    ExitCode::SUCCESS
}

/// The address a port 0 became, for a test or a supervisor; a reader never sees half of it.
fn write_ports_file(
    path: &std::path::Path,
    addr: SocketAddr,
    base_url: &str,
) -> std::io::Result<()> {
    let text = serde_json::json!({ "listen": addr.to_string(), "base_url": base_url }).to_string();
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    std::fs::write(&tmp, text)?;
    std::fs::rename(&tmp, path)
}
