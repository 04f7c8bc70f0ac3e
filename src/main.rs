//! `wecom-gateway`: a reverse proxy that makes an existing CRM work inside WeCom and WeChat.

use wecom_gateway::{demo, lifecycle, listeners, logging, server};

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
        /// Once every listener is bound, write their addresses here as JSON
        /// (`listen`, `admin_listen`, `qyapi_listen`, `public_url`): how a supervisor or a test
        /// learns the ports a port 0 got.
        #[arg(long)]
        ports_file: Option<PathBuf>,
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
        /// As for `run`.
        #[arg(long)]
        ports_file: Option<PathBuf>,
    },
    /// Print the TOML an nginx config becomes, and what it cannot honour.
    ///
    /// The TOML goes to stdout; each directive the gateway cannot honour is a line
    /// `FILE:LINE: directive 'x' is not supported` on stderr. Exit 0 when everything is
    /// supported, 2 when something is not (the TOML is still printed) or the file is invalid.
    ImportNginx { file: PathBuf },
}

/// mimalloc, tuned in `wecom_gateway::allocator`.
#[global_allocator]
static ALLOCATOR: wecom_gateway::allocator::Allocator = wecom_gateway::allocator::ALLOCATOR;

fn main() -> ExitCode {
    wecom_gateway::allocator::tune();
    let cli = Cli::parse();
    logging::init(cli.log_format);
    let code = run(cli.command);
    // Every line logged reaches the output before the process ends.
    logging::flush();
    code
}

fn run(command: Command) -> ExitCode {
    match command {
        Command::Check { config } => match lifecycle::load(&config) {
            Ok(c) => {
                println!("{}: ok", config.display());
                print!("{}", c.describe_routes());
                if let Some(w) = wecom_gateway::store::persistence_warning(&c.store) {
                    eprintln!("warning: [store]: {w}");
                }
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("{e}");
                ExitCode::from(2)
            }
        },
        Command::Run { config, ports_file } => serve(config, ports_file, Mode::Run),
        Command::Demo { config, ports_file } => serve(config, ports_file, Mode::Demo),
        Command::ImportNginx { file } => match wecom_gateway::import_nginx::import(&file) {
            Ok(i) => {
                print!("{}", i.toml);
                for line in &i.unsupported {
                    eprintln!("{line}");
                }
                if i.unsupported.is_empty() {
                    ExitCode::SUCCESS
                } else {
                    ExitCode::from(2)
                }
            }
            Err(e) => {
                eprintln!("{e}");
                ExitCode::from(2)
            }
        },
    }
}

enum Mode {
    Run,
    Demo,
}

/// `run` and `demo`: load, bind every listener (a port 0 becomes a real port before anything
/// uses the addresses), start the helpers, serve.
fn serve(config: PathBuf, ports_file: Option<PathBuf>, mode: Mode) -> ExitCode {
    let mut loaded = match lifecycle::load(&config) {
        Ok(c) => c,
        Err(e) => {
            logging::fatal(&e.to_string());
            return ExitCode::from(2);
        }
    };
    let bound = match listeners::bind(&loaded.server) {
        Ok(b) => b,
        Err(e) => {
            logging::fatal(&format!("wecom-gateway: {e}"));
            return ExitCode::from(1);
        }
    };
    bound.ports().settle(&mut loaded.server);
    let helpers = match mode {
        Mode::Run => demo::start_emulator(&loaded).map_err(|e| format!("wecom-gateway: {e}")),
        Mode::Demo => demo::start(&loaded)
            .map(|h| {
                println!("{}", demo::banner(&loaded, &h));
                Some(h)
            })
            .map_err(|e| format!("wecom-gateway demo: {e}")),
    };
    // Kept alive for the life of the process.
    let _helpers = match helpers {
        Ok(h) => h,
        Err(e) => {
            logging::fatal(&e.to_string());
            return ExitCode::from(1);
        }
    };
    let emulator = _helpers.as_ref().map(|h| h.emulator);
    match server::run(config, loaded, bound, emulator, ports_file) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            logging::fatal(&format!("wecom-gateway: {e}"));
            ExitCode::from(1)
        }
    }
}
