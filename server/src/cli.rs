//! The `kennel` command line: config management commands (this module) on
//! top of [`crate::config`] and [`crate::routing`], and the two ways to
//! serve (`kennel serve` and Mongrel2's `kennel CONFIG.sqlite SERVER_UUID`),
//! which hand over to [`crate::process::serve`].
//!
//! Owns argument parsing (clap), the text the commands print and their exit
//! codes. `main.rs` only calls [`main`]. Output goes to a writer the caller
//! passes, so the commands are testable in-process as well as through the
//! real binary.

use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::config::{self, deploy_log, ConfigError, ServerSelector, Snapshot, Target};
use crate::control;
use crate::process;

/// Exit code for a config database that is missing, unreadable or invalid
/// (`EX_USAGE`, as linkerd and friends use for bad configuration).
pub const EXIT_CONFIG: u8 = 64;

/// Exit code for a question whose answer is "no" (`kennel route` found no
/// route) or an I/O failure writing the output.
pub const EXIT_FAILURE: u8 = 1;

const ABOUT: &str = "Kennel: a message-queue web server in the Mongrel2 tradition.";

const AFTER_HELP: &str = "\
Mongrel2's form also works: `kennel CONFIG.sqlite SERVER_UUID [--foreground]` serves the server
with that uuid (or name), daemonizing unless the `server.daemonize` setting is 0.

Examples:
  kennel serve --db config.sqlite               serve the database's only server, in the foreground
  kennel load --db config.sqlite site.sql       create the schema if needed, then apply site.sql
  kennel load-conf mongrel2.conf --db config.sqlite
                                                replace the config with a Mongrel2 .conf's, as m2sh load does
  kennel check --db config.sqlite               validate the config (exit 0, or 64 with the error)
  kennel servers --db config.sqlite             list servers
  kennel hosts --db config.sqlite --server main list a server's hosts
  kennel routes --db config.sqlite              list every host's routes and their targets
  kennel route --db config.sqlite --host example.com /users/42
                                                which route and target would answer
  kennel control --db config.sqlite status what=net
                                                ask a running server's control port (no command: a prompt)
  kennel uuid                                   print a fresh UUID for a server or handler
  kennel commit --db config.sqlite --what \"new route\" --why \"launch\"
                                                add an entry to the deployment log, as m2sh commit does
  kennel log --db config.sqlite                 print the deployment log, as m2sh log does";

/// The `kennel` command line.
#[derive(Debug, Parser)]
#[command(
    name = "kennel",
    version,
    about = ABOUT,
    after_help = AFTER_HELP,
    args_conflicts_with_subcommands = true,
    arg_required_else_help = true
)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Option<Command>,
    /// Mongrel2's form: the config database to serve from.
    #[arg(value_name = "CONFIG.sqlite", requires = "server_uuid")]
    pub config: Option<PathBuf>,
    /// Mongrel2's form: the server to run, by uuid (or name).
    #[arg(value_name = "SERVER_UUID")]
    pub server_uuid: Option<String>,
    /// Mongrel2's form: stay in the foreground whatever `server.daemonize` says.
    #[arg(long)]
    pub foreground: bool,
}

/// Selects the config database and, when it holds several, the server.
#[derive(Debug, Clone, clap::Args)]
pub struct DbArgs {
    /// The SQLite config database.
    #[arg(long, value_name = "FILE")]
    pub db: PathBuf,
    /// The server, by uuid or name (needed when the database has several).
    #[arg(long, value_name = "UUID|NAME")]
    pub server: Option<String>,
}

impl DbArgs {
    fn selector(&self) -> ServerSelector {
        match &self.server {
            Some(s) => ServerSelector::UuidOrName(s.clone()),
            None => ServerSelector::Any,
        }
    }

    fn load(&self) -> Result<Snapshot, CliError> {
        require_file(&self.db)?;
        Ok(config::load(&self.db, &self.selector())?)
    }
}

/// Selects the config database and the servers for `start`, `stop`,
/// `reload` and `running`, as m2sh does (its `-db` defaults to
/// `config.sqlite` too).
#[derive(Debug, Clone, clap::Args)]
pub struct LifecycleArgs {
    /// The SQLite config database.
    #[arg(long, value_name = "FILE", default_value = "config.sqlite")]
    pub db: PathBuf,
    /// Which server (at most one of these; none = the database's only server).
    #[command(flatten)]
    pub choice: ServerChoice,
}

/// m2sh's `-name`, `-host`, `-uuid` and `-every`, and Kennel's `--server`.
#[derive(Debug, Clone, Default, clap::Args)]
#[group(id = "server_choice", multiple = false)]
pub struct ServerChoice {
    /// The server with this `name`.
    #[arg(long, value_name = "NAME")]
    pub name: Option<String>,
    /// The server whose `default_host` is this.
    #[arg(long, value_name = "HOST")]
    pub host: Option<String>,
    /// The server with this `uuid`.
    #[arg(long, value_name = "UUID")]
    pub uuid: Option<String>,
    /// The server with this uuid, else this name (as the other commands).
    #[arg(long, value_name = "UUID|NAME")]
    pub server: Option<String>,
    /// Every server in the database.
    #[arg(long)]
    pub every: bool,
}

impl ServerChoice {
    /// The selection these options make.
    pub fn selection(&self) -> crate::lifecycle::Selection {
        use crate::lifecycle::Selection;
        match self {
            ServerChoice { every: true, .. } => Selection::Every,
            ServerChoice { name: Some(v), .. } => Selection::Name(v.clone()),
            ServerChoice { host: Some(v), .. } => Selection::Host(v.clone()),
            ServerChoice { uuid: Some(v), .. } => Selection::Uuid(v.clone()),
            ServerChoice {
                server: Some(v), ..
            } => Selection::UuidOrName(v.clone()),
            _ => Selection::Only,
        }
    }
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve a server from the config database, in the foreground.
    #[command(after_help = "Example:\n  kennel serve --db config.sqlite --server main")]
    Serve(DbArgs),
    /// Create the schema if the database has none, then apply an SQL file.
    #[command(after_help = "Example:\n  kennel load --db config.sqlite examples/site/config.sql")]
    Load {
        /// The SQLite config database (created if missing).
        #[arg(long, value_name = "FILE")]
        db: PathBuf,
        /// The SQL to apply, in one transaction.
        sql: PathBuf,
    },
    /// Validate the config of one server; exit 0, or 64 with the precise error.
    #[command(after_help = "Example:\n  kennel check --db config.sqlite --server main")]
    Check(DbArgs),
    /// List the servers.
    Servers {
        /// The SQLite config database.
        #[arg(long, value_name = "FILE")]
        db: PathBuf,
    },
    /// List a server's hosts.
    Hosts(DbArgs),
    /// List routes and their targets (every host's, or one host's).
    Routes {
        #[command(flatten)]
        db: DbArgs,
        /// Only this host (by name).
        #[arg(long)]
        host: Option<String>,
    },
    /// Show which host, route and target would answer a request.
    #[command(
        after_help = "Example:\n  kennel route --db config.sqlite --host localhost:6767 /users/42"
    )]
    Route {
        #[command(flatten)]
        db: DbArgs,
        /// The request's Host header (a port is ignored); the default host
        /// answers when nothing matches.
        #[arg(long)]
        host: String,
        /// The request path.
        path: String,
    },
    /// Start servers (`kennel DB UUID`, as `m2sh start`) and wait until each serves.
    #[command(after_help = "\
A server that daemonizes (the server.daemonize setting, default 1) is waited for: the command
returns once it serves (printing its pid and address) or says why it did not start (exiting
as it did). One that does not daemonize runs in this process's place, in the foreground.
Options may be written m2sh's way too: `kennel start -db config.sqlite -name main`.

Examples:
  kennel start --db config.sqlite --name main
  kennel start --db config.sqlite --every
  kennel start --db config.sqlite --uuid 2f62bd5-... --sudo")]
    Start {
        #[command(flatten)]
        select: LifecycleArgs,
        /// Run it through sudo, or through this command (`--sudo "sudo -u www"`),
        /// as m2sh's `-sudo`. sudo's clean environment keeps the readiness
        /// notice from arriving, so then only the launch is waited for.
        #[arg(long, value_name = "COMMAND", num_args = 0..=1, default_missing_value = "sudo")]
        sudo: Option<String>,
    },
    /// Stop a server (SIGINT to its pid file's pid, as `m2sh stop`) and wait until it is gone.
    #[command(after_help = "\
Exit status: 0 stopped, 3 not running (no pid file), 1 a stale pid file or the process still
running after the wait, 64 a config problem. A second `kennel stop` during the drain makes the
server exit at once.

Example:
  kennel stop --db config.sqlite --name main")]
    Stop {
        #[command(flatten)]
        select: LifecycleArgs,
        /// Send SIGTERM instead of SIGINT (m2sh's `-murder`; Kennel drains on both).
        #[arg(long)]
        murder: bool,
        /// Wait at most this long for the process to exit (default: the
        /// kennel.shutdown_grace_ms setting plus 5 s); 0 returns once signalled.
        #[arg(long, value_name = "SECONDS")]
        wait: Option<u64>,
    },
    /// Reload a server's config (SIGHUP to its pid file's pid, as `m2sh reload`).
    #[command(after_help = "\
Its log says whether the new config was taken (\"reloaded the config\") or refused and why.
Exit status: 0 signalled, 3 not running (no pid file), 1 a stale pid file, 64 a config problem.

Example:
  kennel reload --db config.sqlite --name main")]
    Reload {
        #[command(flatten)]
        select: LifecycleArgs,
    },
    /// Say whether a server runs (its pid file and `kill(pid, 0)`, as `m2sh running`).
    #[command(after_help = "\
Exit status (as LSB init scripts' status): 0 running, 1 not running but a (stale) pid file is
there, 3 not running (no pid file), 64 a config problem.

Example:
  kennel running --db config.sqlite --name main")]
    Running {
        #[command(flatten)]
        select: LifecycleArgs,
    },
    /// Replace the config with a Mongrel2 `.conf` file's, exactly as `m2sh
    /// load` does (default mimetypes included), in one transaction.
    #[command(
        after_help = "The rows equal those `m2sh load -config FILE.conf -db FILE` makes; what m2sh\n\
                      would do silently is printed as a warning, and what it reports as an error\n\
                      is an error here (exit 64, nothing changed).\n\n\
                      Example:\n  kennel load-conf mongrel2.conf --db config.sqlite"
    )]
    LoadConf {
        /// The Mongrel2 `.conf` file.
        #[arg(value_name = "FILE.conf")]
        conf: PathBuf,
        /// The SQLite config database (created if missing).
        #[arg(long, value_name = "FILE")]
        db: PathBuf,
    },
    /// Print the deployment log (the `log` table), as `m2sh log` does.
    #[command(after_help = "Example:\n  kennel log --db config.sqlite")]
    Log {
        /// The SQLite config database.
        #[arg(long, value_name = "FILE")]
        db: PathBuf,
    },
    /// Add an entry to the deployment log, as `m2sh commit` does.
    #[command(
        after_help = "The entry is made by the login user (getlogin, else $LOGNAME), at the time\n\
                      of the commit.\n\n\
                      Example:\n  kennel commit --db config.sqlite --what \"new /api/ route\" --why \"launch\""
    )]
    Commit {
        /// The SQLite config database.
        #[arg(long, value_name = "FILE")]
        db: PathBuf,
        /// What was done.
        #[arg(long, default_value = "")]
        what: String,
        /// Why (no default: NULL).
        #[arg(long)]
        why: Option<String>,
        /// Where (default: this machine's host name).
        #[arg(long = "where", value_name = "WHERE")]
        location: Option<String>,
        /// How.
        #[arg(long, default_value = "kennel")]
        how: String,
    },
    /// Talk to a running server's control port, as `m2sh control` does:
    /// one command, or (without one) a prompt reading commands from stdin.
    #[command(after_help = CONTROL_HELP)]
    Control(ControlArgs),
    /// Print Kennel's version.
    Version,
    /// Print a new random UUID.
    Uuid,
}

const CONTROL_HELP: &str = "\
A command is a name and key=value words; a value of digits (with an optional -) is sent as an
integer. The commands: help, uuid, time, info, status what=net, status what=tasks, kill id=N,
stop, terminate, reload, control_stop (docs/control-port.md). Replies print as m2sh prints
them; with --raw, as the tnetstring bytes received.

The control port is the server's control_port column, else the control_port setting, else
ipc://run/control; a relative ipc:// path is inside the server's chroot (without a chroot,
relative to this directory: run it where the server runs).

Examples:
  kennel control --db config.sqlite status what=net
  kennel control --db config.sqlite --server main kill id=42
  kennel control --endpoint tcp://127.0.0.1:9999 uuid
  echo 'status what=tasks' | kennel control --db config.sqlite";

/// `kennel control`'s arguments.
#[derive(Debug, Clone, clap::Args)]
#[command(group(clap::ArgGroup::new("target").required(true).args(["db", "endpoint"])))]
pub struct ControlArgs {
    /// The config database: the control port is the server's.
    #[arg(long, value_name = "FILE")]
    pub db: Option<PathBuf>,
    /// The server, by uuid or name (needed when the database has several).
    #[arg(long, value_name = "UUID|NAME", requires = "db")]
    pub server: Option<String>,
    /// The control port's ZeroMQ spec, instead of a database's.
    #[arg(long, value_name = "SPEC", conflicts_with = "db")]
    pub endpoint: Option<String>,
    /// How long to wait for each reply, in milliseconds.
    #[arg(long, value_name = "MS", default_value_t = 5000)]
    pub timeout_ms: u64,
    /// Print each reply's bytes as received (then a newline), not as m2sh does.
    #[arg(long)]
    pub raw: bool,
    /// The command and its key=value arguments; none for a prompt.
    #[arg(
        value_name = "COMMAND [KEY=VALUE]...",
        trailing_var_arg = true,
        allow_hyphen_values = true
    )]
    pub command: Vec<String>,
}

/// Why a command failed.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// The config database is missing, unreadable or invalid.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// A file named on the command line cannot be read.
    #[error("{}: {source}", .path.display())]
    File {
        /// The file.
        path: PathBuf,
        /// Why.
        source: io::Error,
    },
    /// A name given on the command line matches nothing.
    #[error("{0}")]
    NotFound(String),
    /// The question's answer is "no".
    #[error("{0}")]
    NoMatch(String),
    /// Writing the output failed.
    #[error("writing output: {0}")]
    Output(#[from] io::Error),
    /// Serving failed to start or stopped with an error.
    #[error(transparent)]
    Serve(#[from] process::ProcessError),
    /// The TLS files of a `use_ssl` server are missing or wrong.
    #[error(transparent)]
    Tls(#[from] crate::tls::TlsError),
    /// Starting, signalling or finding a server's process failed.
    #[error(transparent)]
    Lifecycle(#[from] crate::lifecycle::LifecycleError),
    /// A `.conf` file could not be loaded.
    #[error(transparent)]
    Conf(#[from] config::ConfError),
    /// A deployment log entry could not be added.
    #[error(transparent)]
    DeployLog(#[from] deploy_log::DeployLogError),
    /// The control port could not be reached or did not answer.
    #[error(transparent)]
    Control(#[from] control::client::ClientError),
    /// A control command is not `command key=value ...`.
    #[error(transparent)]
    Line(#[from] control::client::LineError),
    /// The control port answered with an error (printed as m2sh prints it).
    #[error("the control port refused the command{}", .0.as_ref().map(|c| format!(" ({c})")).unwrap_or_default())]
    Refused(Option<String>),
    /// The control port's reply is not one m2sh could print.
    #[error("the control port's reply is unreadable: {0}")]
    BadReply(String),
}

impl CliError {
    /// The process exit code for this error.
    pub fn exit_code(&self) -> u8 {
        match self {
            CliError::Config(_)
            | CliError::File { .. }
            | CliError::NotFound(_)
            | CliError::Tls(_) => EXIT_CONFIG,
            CliError::NoMatch(_) | CliError::Output(_) => EXIT_FAILURE,
            CliError::Serve(e) => e.exit_code(),
            CliError::Lifecycle(e) => e.exit_code(),
            CliError::Conf(_) => EXIT_CONFIG,
            CliError::DeployLog(e) if e.is_database() => EXIT_CONFIG,
            CliError::DeployLog(_) => EXIT_FAILURE,
            CliError::Line(_) => 2,
            CliError::Control(_) | CliError::Refused(_) | CliError::BadReply(_) => EXIT_FAILURE,
        }
    }
}

fn require_file(path: &Path) -> Result<(), CliError> {
    std::fs::metadata(path)
        .map(|_| ())
        .map_err(|source| CliError::File {
            path: path.to_owned(),
            source,
        })
}

/// Parses the process arguments, runs the command and returns the exit code.
pub fn main() -> ExitCode {
    let cli = Cli::parse_from(m2sh_style_args(std::env::args_os()));
    let command = match (cli.command, cli.config, cli.server_uuid) {
        (Some(command), _, _) => command,
        (None, Some(db), Some(uuid)) => {
            let mode = process::Mode::Mongrel2 {
                foreground: cli.foreground,
            };
            return serve(&db, &ServerSelector::UuidOrName(uuid), mode);
        }
        _ => {
            eprintln!("kennel: give a command, or CONFIG.sqlite SERVER_UUID (see --help)");
            return ExitCode::from(2);
        }
    };
    if let Command::Serve(args) = &command {
        // Not under the stdout lock below: the server logs to stdout from
        // every worker thread.
        return serve(&args.db, &args.selector(), process::Mode::Foreground);
    }
    let stdout = io::stdout();
    let mut out = stdout.lock();
    match run(&command, &mut out) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            let _ = out.flush();
            eprintln!("kennel: {e}");
            ExitCode::from(e.exit_code())
        }
    }
}

fn serve(db: &Path, selector: &ServerSelector, mode: process::Mode) -> ExitCode {
    let result =
        require_file(db).and_then(|()| process::serve(db, selector, mode).map_err(CliError::from));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("kennel: {e}");
            ExitCode::from(e.exit_code())
        }
    }
}

/// m2sh writes long options with one dash (`-db`, `-name`, `-every`);
/// clap wants two. Rewrites `-word` and `-word=value` to `--word...` when
/// `word` is a long option of the subcommand given (and longer than one
/// letter), so `kennel start -db config.sqlite -name main` works as the
/// `m2sh` line it replaces. Arguments after `--` are left alone.
pub fn m2sh_style_args(
    args: impl IntoIterator<Item = std::ffi::OsString>,
) -> Vec<std::ffi::OsString> {
    use clap::CommandFactory;
    let args: Vec<std::ffi::OsString> = args.into_iter().collect();
    let cli = Cli::command();
    let Some(sub) = args
        .get(1)
        .and_then(|a| a.to_str())
        .and_then(|name| cli.find_subcommand(name))
    else {
        return args;
    };
    let longs: Vec<&str> = sub.get_arguments().filter_map(|a| a.get_long()).collect();
    let mut rewritten = Vec::with_capacity(args.len());
    let mut options_end = false;
    for (i, arg) in args.iter().enumerate() {
        let text = arg.to_str().unwrap_or("");
        options_end |= i >= 2 && text == "--";
        let word = text
            .strip_prefix('-')
            .filter(|w| !w.starts_with('-'))
            .map(|w| w.split_once('=').map_or(w, |(name, _)| name));
        match word {
            Some(name) if i >= 2 && !options_end && name.len() > 1 && longs.contains(&name) => {
                rewritten.push(format!("-{text}").into());
            }
            _ => rewritten.push(arg.clone()),
        }
    }
    rewritten
}

/// Runs `one` for each server `select` chooses. For one server its error
/// is the command's; for `--every`, each line is prefixed with the server's
/// name, each failure is reported as it happens, and the command fails
/// with the first failure's exit code.
fn for_each_server(
    select: &LifecycleArgs,
    out: &mut dyn Write,
    mut one: impl FnMut(&config::Server, &mut dyn Write, &str) -> Result<(), CliError>,
) -> Result<(), CliError> {
    use crate::lifecycle::{self, LifecycleError, Selection};
    require_file(&select.db)?;
    let selection = select.choice.selection();
    let servers = lifecycle::select(&select.db, &selection)?;
    if selection != Selection::Every {
        return servers.iter().try_for_each(|server| one(server, out, ""));
    }
    let mut first_code = None;
    let mut failed = 0;
    for server in &servers {
        let prefix = format!("server {}: ", lifecycle::display_name(server));
        if let Err(e) = one(server, out, &prefix) {
            out.flush()?;
            eprintln!("kennel: {prefix}{e}");
            failed += 1;
            first_code.get_or_insert(e.exit_code());
        }
    }
    match first_code {
        None => Ok(()),
        Some(code) => Err(LifecycleError::Several {
            failed,
            total: servers.len(),
            code,
        }
        .into()),
    }
}

/// `kennel start`, `stop`, `reload` and `running`.
fn run_lifecycle(command: &Command, out: &mut dyn Write) -> Result<(), CliError> {
    use crate::lifecycle::{self, Launcher, LifecycleError, PidState, Started};
    use nix::sys::signal::Signal;
    match command {
        Command::Start { select, sudo } => {
            let program = std::env::current_exe().map_err(|source| LifecycleError::Launch {
                program: "kennel (finding its own path)".into(),
                source,
            })?;
            let launcher = Launcher {
                program,
                sudo: sudo.clone(),
            };
            require_file(&select.db)?;
            let servers = lifecycle::select(&select.db, &select.choice.selection())?;
            // The setting is the database's, so one server tells for all.
            if !Launcher::daemonizes(&select.db, &servers[0]) {
                if servers.len() > 1 || select.choice.every {
                    return Err(LifecycleError::Foreground.into());
                }
                out.flush()?;
                return Err(launcher.exec(&select.db, &servers[0]).into());
            }
            for_each_server(select, out, |server, out, prefix| {
                match launcher.start(&select.db, server)? {
                    Started::Serving { pid, status } => {
                        writeln!(out, "{prefix}kennel at PID {pid} running ({status}).")?
                    }
                    Started::Launched => writeln!(
                        out,
                        "{prefix}started through {}; it daemonized (`kennel running` says \
                         whether it serves)",
                        launcher.sudo.as_deref().unwrap_or("sudo")
                    )?,
                }
                Ok(())
            })
        }
        Command::Stop {
            select,
            murder,
            wait,
        } => {
            let signal = if *murder {
                Signal::SIGTERM
            } else {
                Signal::SIGINT
            };
            for_each_server(select, out, |server, out, prefix| {
                let pid = lifecycle::signal(server, signal)?;
                match wait {
                    Some(0) => writeln!(out, "{prefix}sent {signal} to kennel at PID {pid}.")?,
                    _ => {
                        let timeout = wait
                            .map(std::time::Duration::from_secs)
                            .unwrap_or_else(|| lifecycle::stop_timeout(&select.db, server));
                        lifecycle::wait_for_exit(pid, signal, timeout)?;
                        writeln!(out, "{prefix}kennel at PID {pid} stopped.")?;
                    }
                }
                Ok(())
            })
        }
        Command::Reload { select } => for_each_server(select, out, |server, out, prefix| {
            let pid = lifecycle::signal(server, Signal::SIGHUP)?;
            writeln!(
                out,
                "{prefix}sent SIGHUP to kennel at PID {pid}: it reloads its config (its log says \
                 whether the new one was taken)."
            )?;
            Ok(())
        }),
        Command::Running { select } => for_each_server(select, out, |server, out, prefix| {
            // "Not running" is the error, on standard error, as `kennel
            // route` says "no route".
            let pid = PidState::of(server)?.running()?;
            writeln!(out, "{prefix}kennel at PID {pid} running.")?;
            Ok(())
        }),
        _ => unreachable!("not a lifecycle command"),
    }
}

/// Runs one command, writing its output to `out`.
pub fn run(command: &Command, out: &mut dyn Write) -> Result<(), CliError> {
    match command {
        Command::Serve(args) => {
            require_file(&args.db)?;
            process::serve(&args.db, &args.selector(), process::Mode::Foreground)?;
        }
        Command::Load { db, sql } => {
            let text = std::fs::read_to_string(sql).map_err(|source| CliError::File {
                path: sql.clone(),
                source,
            })?;
            config::apply_sql(db, &text)?;
            writeln!(out, "loaded {} into {}", sql.display(), db.display())?;
        }
        Command::Check(args) => {
            let snapshot = args.load()?;
            for warning in &snapshot.warnings {
                writeln!(out, "warning: {warning}")?;
            }
            // The certificate files, read as the server would read them.
            if let Some(tls) = crate::tls::load(&snapshot, &crate::tls::Resumption::new()?)? {
                for warning in &tls.warnings {
                    writeln!(out, "warning: TLS: {warning}")?;
                }
            }
            let routes: usize = snapshot.hosts.iter().map(|h| h.routes.len()).sum();
            writeln!(
                out,
                "ok: server {} ({}): {} hosts, {} routes, {} handlers, {} directories, {} proxies",
                display_name(&snapshot),
                snapshot.server.uuid,
                snapshot.hosts.len(),
                routes,
                snapshot.handlers.len(),
                snapshot.dirs.len(),
                snapshot.proxies.len(),
            )?;
        }
        Command::Servers { db } => {
            require_file(db)?;
            let conn = rusqlite::Connection::open_with_flags(
                db,
                rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
            )
            .map_err(|source| ConfigError::Open {
                path: db.clone(),
                source,
            })?;
            writeln!(out, "SERVERS:\n------")?;
            for server in config::list_servers(&conn)? {
                writeln!(
                    out,
                    "{} {} {} {}:{}",
                    server.name, server.default_host, server.uuid, server.bind_addr, server.port
                )?;
            }
        }
        Command::Hosts(args) => {
            let snapshot = args.load()?;
            writeln!(out, "HOSTS in {}:\n-----", display_name(&snapshot))?;
            for (i, host) in snapshot.hosts.iter().enumerate() {
                let default = if i == snapshot.default_host {
                    " (default)"
                } else {
                    ""
                };
                writeln!(
                    out,
                    "{} {} matching {}{}",
                    host.id, host.name, host.matching, default
                )?;
            }
        }
        Command::Routes { db, host } => {
            let snapshot = db.load()?;
            let hosts: Vec<_> = match host {
                Some(name) => {
                    let found: Vec<_> = snapshot.hosts.iter().filter(|h| &h.name == name).collect();
                    if found.is_empty() {
                        return Err(CliError::NotFound(format!(
                            "server {} has no host named {name:?}",
                            display_name(&snapshot)
                        )));
                    }
                    found
                }
                None => snapshot.hosts.iter().collect(),
            };
            for host in hosts {
                writeln!(
                    out,
                    "ROUTES in host {}, server {}\n-----",
                    host.name,
                    display_name(&snapshot)
                )?;
                for (key, target) in host.routes.iter() {
                    writeln!(out, "{key} -> {}", describe_target(&snapshot, *target))?;
                }
            }
        }
        Command::Route { db, host, path } => {
            let snapshot = db.load()?;
            let (index, how) = match snapshot.host_table.lookup(host) {
                Some(&i) => (i, "matched"),
                None => (snapshot.default_host, "default host"),
            };
            let chosen = &snapshot.hosts[index];
            writeln!(
                out,
                "host: {} (id {}, matching {}, {how})",
                chosen.name, chosen.id, chosen.matching
            )?;
            let Some(found) = chosen.routes.lookup(path.as_bytes()) else {
                return Err(CliError::NoMatch(format!(
                    "no route for {path:?} on host {}",
                    chosen.name
                )));
            };
            writeln!(out, "route: {} (prefix {:?})", found.key, found.prefix)?;
            writeln!(out, "target: {}", describe_target(&snapshot, *found.target))?;
        }
        Command::Start { .. }
        | Command::Stop { .. }
        | Command::Reload { .. }
        | Command::Running { .. } => run_lifecycle(command, out)?,
        Command::LoadConf { conf, db } => {
            let report = config::load_conf(conf, db)?;
            for warning in &report.warnings {
                writeln!(out, "warning: {warning}")?;
            }
            writeln!(
                out,
                "loaded {} into {}: servers {}, hosts {}, routes {}, handlers {}, directories {}, \
                 proxies {}, filters {}, xrequests {}, settings {}",
                conf.display(),
                db.display(),
                report.servers,
                report.hosts,
                report.routes,
                report.handlers,
                report.dirs,
                report.proxies,
                report.filters,
                report.xrequests,
                report.settings,
            )?;
        }
        Command::Log { db } => {
            require_file(db)?;
            let lines = deploy_log::read(db)?;
            writeln!(out, "{}", deploy_log::HEADING)?;
            for line in lines {
                writeln!(out, "{line}")?;
            }
        }
        Command::Commit {
            db,
            what,
            why,
            location,
            how,
        } => {
            require_file(db)?;
            let entry = deploy_log::Entry::by_this_user(
                what.clone(),
                why.clone(),
                location.clone(),
                Some(how.clone()),
            )?;
            deploy_log::commit(db, &entry)?;
        }
        Command::Control(args) => control_command(args, out)?,
        Command::Version => writeln!(out, "kennel {}", env!("CARGO_PKG_VERSION"))?,
        Command::Uuid => writeln!(out, "{}", uuid::Uuid::new_v4())?,
    }
    Ok(())
}

/// `kennel control`: one command, or a prompt reading them from stdin
/// (shown only when stdin is a terminal; a bad line or a reply that does
/// not come is reported on stderr and the prompt goes on, as m2sh's).
fn control_command(args: &ControlArgs, out: &mut dyn Write) -> Result<(), CliError> {
    let (endpoint, label) = match (&args.endpoint, &args.db) {
        (Some(endpoint), _) => (endpoint.clone(), endpoint.clone()),
        (None, Some(db)) => {
            let db = DbArgs {
                db: db.clone(),
                server: args.server.clone(),
            };
            let snapshot = db.load()?;
            (
                control::client::endpoint_of(&snapshot),
                display_name(&snapshot).to_owned(),
            )
        }
        (None, None) => unreachable!("clap requires --db or --endpoint"),
    };
    let timeout = std::time::Duration::from_millis(args.timeout_ms);
    let mut session = control::client::Session::connect(&endpoint, timeout)?;
    if !args.command.is_empty() {
        let request = control::client::request_of_words(&args.command)?;
        let reply = session.ask(&request)?;
        return show_reply(&reply, args.raw, out);
    }
    use std::io::{BufRead, IsTerminal};
    let stdin = io::stdin();
    let prompt = stdin.is_terminal().then(|| format!("kennel [{label}]> "));
    let mut lines = stdin.lock().lines();
    loop {
        if let Some(prompt) = &prompt {
            write!(out, "{prompt}")?;
        }
        out.flush()?;
        let Some(line) = lines.next() else {
            break;
        };
        let line = line?;
        let asked = control::client::request_of_line(&line)
            .map_err(CliError::from)
            .and_then(|request| match request {
                Some(request) => Ok(Some(session.ask(&request)?)),
                None => Ok(None),
            });
        match asked.and_then(|reply| match reply {
            Some(reply) => show_reply(&reply, args.raw, out),
            None => Ok(()),
        }) {
            Ok(()) | Err(CliError::Refused(_)) => {}
            Err(CliError::Output(e)) => return Err(CliError::Output(e)),
            Err(e) => {
                out.flush()?;
                eprintln!("kennel: {e}");
            }
        }
    }
    if prompt.is_some() {
        writeln!(out)?;
    }
    Ok(())
}

/// Prints a control port reply (as m2sh does, or raw) and says whether it
/// was an error.
fn show_reply(reply: &[u8], raw: bool, out: &mut dyn Write) -> Result<(), CliError> {
    if raw {
        out.write_all(reply)?;
        writeln!(out)?;
        let refused = tnetstring_error_code(reply);
        return match refused {
            Some(code) => Err(CliError::Refused(code)),
            None => Ok(()),
        };
    }
    match control::client::display(reply, out)? {
        control::client::Shown::Table => Ok(()),
        control::client::Shown::Error(code) => Err(CliError::Refused(code)),
        control::client::Shown::Invalid(why) => Err(CliError::BadReply(why)),
    }
}

/// `Some(code)` when `reply` is an error dict (`None` inside when it has
/// no code).
fn tnetstring_error_code(reply: &[u8]) -> Option<Option<String>> {
    let (value, _) = kennel_handler::tnetstring::parse_prefix(reply).ok()?;
    value.get("error")?;
    Some(
        value
            .get("code")
            .and_then(kennel_handler::tnetstring::Value::as_str)
            .map(str::to_owned),
    )
}

fn display_name(snapshot: &Snapshot) -> &str {
    if snapshot.server.name.is_empty() {
        &snapshot.server.uuid
    } else {
        &snapshot.server.name
    }
}

fn describe_target(snapshot: &Snapshot, target: Target) -> String {
    match target {
        Target::Handler(i) => {
            let h = &snapshot.handlers[i];
            format!(
                "handler {} (send {} as {}, recv {})",
                h.id, h.send_spec, h.send_ident, h.recv_spec
            )
        }
        Target::Dir(i) => {
            let d = &snapshot.dirs[i];
            format!("dir {} (base {}, index {})", d.id, d.base, d.index_file)
        }
        Target::Proxy(i) => {
            let p = &snapshot.proxies[i];
            format!("proxy {} ({}:{})", p.id, p.addr, p.port)
        }
    }
}
