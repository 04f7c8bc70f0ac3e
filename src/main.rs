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
        /// Also ask WeCom, from this host, whether it takes each app's secret, corp id and
        /// this host's address (the app's trusted IPs): exit 2 when it refuses one.
        #[arg(long)]
        online: bool,
    },
    /// Emulator, demo CRM and gateway in one process. Without `-c` and without a
    /// `gateway.toml` in the current directory, the built-in demo configuration is used.
    Demo {
        #[arg(short, long)]
        config: Option<PathBuf>,
        /// As for `run`.
        #[arg(long)]
        ports_file: Option<PathBuf>,
    },
    /// Print the TOML an nginx config becomes, and what it cannot honour.
    ///
    /// The TOML goes to stdout; each directive the gateway cannot honour is a line
    /// `FILE:LINE: directive 'x' is not supported` on stderr. Exit 0 when everything is
    /// supported; 2 when a directive is not (the TOML is still printed: `check` refuses it
    /// until those lines are removed from the nginx file), or when the file has errors
    /// (listed, all of them, and no TOML).
    ImportNginx {
        file: PathBuf,
        /// The directory of the main nginx.conf, where nginx reads the file's relative
        /// `include`s and where its `map`s and `log_format`s are (BaoTa's
        /// `/www/server/nginx/conf`); by default the file's directory or the one above it.
        #[arg(long)]
        conf_dir: Option<PathBuf>,
    },
}

/// mimalloc, tuned in `wecom_gateway::allocator`.
#[global_allocator]
static ALLOCATOR: wecom_gateway::allocator::Allocator = wecom_gateway::allocator::ALLOCATOR;

fn main() -> ExitCode {
    // A reload (SIGHUP) or a log reopen (SIGUSR1, logrotate's postrotate) sent while the
    // process starts would end it (their default action): ignored until the reloader takes
    // them over, once the configuration is loaded and the listeners are bound.
    // SAFETY: setting a signal's disposition to SIG_IGN before any thread is started.
    unsafe {
        libc::signal(libc::SIGHUP, libc::SIG_IGN);
        libc::signal(libc::SIGUSR1, libc::SIG_IGN);
    }
    wecom_gateway::allocator::tune();
    let cli = Cli::parse();
    logging::init(cli.log_format);
    let code = run(cli.command);
    // Every line logged reaches the output before the process ends.
    logging::flush();
    code
}

/// Writes to standard output; a reader gone (`check | head -1`) is no error of ours, where
/// `print!` would panic on the broken pipe.
fn out(text: &str) {
    use std::io::Write;
    let mut stdout = std::io::stdout().lock();
    let _ = stdout
        .write_all(text.as_bytes())
        .and_then(|()| stdout.flush());
}

/// `check --online`: a line per credential WeCom was asked about; exit 2 when it refused one.
fn check_online(config: &wecom_gateway::config::Config) -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("online: no runtime for the checks: {e}");
            return ExitCode::from(2);
        }
    };
    let found = runtime.block_on(wecom_gateway::online::check(config));
    let mut text = String::new();
    for f in &found {
        text.push_str(&format!("online: {}\n", f.line));
    }
    out(&text);
    if found.iter().any(|f| f.refused) {
        ExitCode::from(2)
    } else {
        ExitCode::SUCCESS
    }
}

fn run(command: Command) -> ExitCode {
    match command {
        Command::Check { config, online } => match lifecycle::load(&config) {
            Ok(c) => {
                // Redis is asked first: one that refuses redis_url makes the file wrong.
                let redis = match wecom_gateway::store::persistence_warning(&c.store) {
                    Ok(w) => w,
                    Err(e) => {
                        eprintln!("{}: [store].{e}", config.display());
                        return ExitCode::from(2);
                    }
                };
                out(&format!(
                    "{}: ok\n{}",
                    config.display(),
                    c.describe_routes()
                ));
                if c.store.unused_redis_url {
                    eprintln!(
                        "warning: [store]: {}",
                        wecom_gateway::config::model::UNUSED_REDIS_URL
                    );
                }
                if let Some(w) = redis {
                    eprintln!("warning: [store]: {w}");
                }
                if let Some(w) = lifecycle::memory_store_loses_callbacks(&c.store, &c) {
                    eprintln!("warning: {w}");
                }
                for w in &c.warnings {
                    eprintln!("warning: {w}");
                }
                if online {
                    return check_online(&c);
                }
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("{e}");
                ExitCode::from(2)
            }
        },
        Command::Run { config, ports_file } => serve(config, ports_file, Mode::Run),
        Command::Demo { config, ports_file } => match demo_config(config) {
            Ok((config, written)) => {
                if let Some(dir) = written {
                    lifecycle::remove_when_stopping(dir);
                }
                let code = serve(config, ports_file, Mode::Demo);
                lifecycle::remove_left_behind();
                code
            }
            Err(e) => {
                logging::fatal(&e);
                ExitCode::from(1)
            }
        },
        Command::ImportNginx { file, conf_dir } => {
            match wecom_gateway::import_nginx::import(&file, conf_dir.as_deref()) {
                Ok(i) => {
                    out(&i.toml);
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
            }
        }
    }
}

/// The repository's demo configuration, built in: it names no file, only loopback addresses.
const BUILT_IN_DEMO: &str = include_str!("../gateway.toml");

/// `demo`'s configuration: the one named, else `./gateway.toml`, else the built-in one, written
/// to a directory of its own (a reload reads the file again): made new with an unguessable
/// name, only this user's, never one that was there (another user's directory, a symlink).
/// The second value is that directory, to remove once the demo ends.
fn demo_config(named: Option<PathBuf>) -> Result<(PathBuf, Option<PathBuf>), String> {
    if let Some(p) = named {
        return Ok((p, None));
    }
    let here = PathBuf::from("gateway.toml");
    if here.exists() {
        return Ok((here, None));
    }
    use std::io::Write;
    use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
    let dir =
        std::env::temp_dir().join(format!("wecom-gateway-demo-{:016x}", rand::random::<u64>()));
    let path = dir.join("gateway.toml");
    std::fs::DirBuilder::new()
        .mode(0o700)
        .create(&dir)
        .and_then(|()| {
            std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&path)
        })
        .and_then(|mut f| f.write_all(BUILT_IN_DEMO.as_bytes()))
        .map_err(|e| format!("wecom-gateway demo: cannot write {}: {e}", path.display()))?;
    tracing::info!(config = %path.display(), "no gateway.toml here: the built-in demo configuration is used");
    Ok((path, Some(dir)))
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

#[cfg(test)]
mod tests {
    use super::*;

    /// `wecom-gateway demo` where there is no `gateway.toml` (a binary installed on its own)
    /// runs the built-in demo configuration, which loads as it is. (Each test runs in its own
    /// process under nextest, so the working directory is this test's.)
    #[test]
    fn demo_without_a_config_here_uses_the_built_in_one() {
        let dir = std::env::temp_dir().join(format!("wgw-demo-cwd-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::env::set_current_dir(&dir).unwrap();
        let (path, written) = demo_config(None).unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), BUILT_IN_DEMO);
        lifecycle::load(&path).unwrap();
        // A directory of its own, only this user's, named unguessably.
        let written = written.unwrap();
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&written).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o700);
        let (again, other) = demo_config(None).unwrap();
        assert_ne!(again, path);
        for d in [written, other.unwrap()] {
            std::fs::remove_dir_all(d).unwrap();
        }
        // Named, or present here: that one.
        let named = PathBuf::from("/elsewhere/x.toml");
        assert_eq!(demo_config(Some(named.clone())).unwrap(), (named, None));
        std::fs::write(dir.join("gateway.toml"), "x").unwrap();
        assert_eq!(
            demo_config(None).unwrap(),
            (PathBuf::from("gateway.toml"), None)
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
