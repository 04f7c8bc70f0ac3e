use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use emulator::{Emulator, Scenario};

/// The WeCom / WeChat emulator alone.
#[derive(Parser)]
#[command(name = "wecom-emulator", version)]
struct Args {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:9100")]
    listen: SocketAddr,
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
    let _ = tokio::signal::ctrl_c().await;
    emulator.shutdown().await;
    ExitCode::SUCCESS
}
