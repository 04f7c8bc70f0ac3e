//! `wecom-gateway`: a reverse proxy that makes an existing CRM work inside WeCom and WeChat.

use wecom_gateway::{config, demo, logging, server};

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "wecom-gateway",
    version,
    about = "A reverse proxy that makes an existing CRM work inside WeCom and WeChat"
)]
struct Cli {
    /// Log format.
    #[arg(long, value_enum, default_value = "text", global = true)]
    log_format: logging::LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the gateway.
    Run {
        #[arg(short, long, default_value = "gateway.toml")]
        config: PathBuf,
    },
    /// Validate the config and print the route table (exit 0 valid, 2 invalid).
    Check {
        #[arg(short, long, default_value = "gateway.toml")]
        config: PathBuf,
    },
    /// Emulator, demo CRM and gateway in one process.
    Demo {
        #[arg(short, long, default_value = "gateway.toml")]
        config: PathBuf,
    },
    /// Print the TOML an nginx config becomes, and what it cannot honour.
    ImportNginx { file: PathBuf },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    logging::init(cli.log_format);
    match cli.command {
        Command::Check { config } => match config::load(&config) {
            Ok(c) => {
                println!("{}: ok", config.display());
                print!("{}", c.describe_routes());
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("{e}");
                ExitCode::from(2)
            }
        },
        Command::Run { config } => {
            let loaded = match config::load(&config) {
                Ok(c) => c,
                Err(e) => {
                    eprintln!("{e}");
                    return ExitCode::from(2);
                }
            };
            match server::run(config, loaded) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("wecom-gateway: {e}");
                    ExitCode::from(1)
                }
            }
        }
        Command::Demo { config } => {
            let loaded = match config::load(&config) {
                Ok(c) => c,
                Err(e) => {
                    eprintln!("{e}");
                    return ExitCode::from(2);
                }
            };
            let helpers = match demo::start(&loaded) {
                Ok(h) => h,
                Err(e) => {
                    eprintln!("wecom-gateway demo: {e}");
                    return ExitCode::from(1);
                }
            };
            println!("{}", demo::banner(&loaded, &helpers));
            match server::run(config, loaded) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("wecom-gateway: {e}");
                    ExitCode::from(1)
                }
            }
        }
        Command::ImportNginx { .. } => not_yet("import-nginx"),
    }
}

fn not_yet(what: &str) -> ExitCode {
    eprintln!("wecom-gateway: `{what}` is not yet available in this version");
    ExitCode::from(2)
}
