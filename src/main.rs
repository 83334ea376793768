//! The `privlink` command line.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use privlink::edge::{config_file, daemon, privileges, rootless, store};
use privlink::lab::{demo, standin};
use privlink_core::config::Config;

/// A working copy of an AWS interface VPC endpoint (PrivateLink ENI) on Linux.
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the endpoint(s) of a config in the foreground until SIGINT/SIGTERM.
    Up {
        /// The TOML config.
        #[arg(long, short)]
        config: PathBuf,
        /// Where ids and allocated IPs are kept between runs.
        #[arg(long, default_value = store::DEFAULT_STATE_DIR)]
        state_dir: PathBuf,
    },
    /// Validate a config and print the plan without touching the system.
    Check {
        /// The TOML config.
        #[arg(long, short)]
        config: PathBuf,
        /// State dir to read kept ids and IPs from (never written).
        #[arg(long, default_value = store::DEFAULT_STATE_DIR)]
        state_dir: PathBuf,
    },
    /// Build a lab from the embedded config, show the endpoint at work, tear it down.
    Demo,
    /// Run one command that reaches only the named AWS services (an ephemeral VPC, removed at exit).
    Run {
        /// A service to reach: a short name (`ec2`, `sts`, `s3`) or a full one
        /// (`com.amazonaws.us-east-1.ec2`); repeat for more.
        #[arg(long = "service", required = true)]
        services: Vec<String>,
        /// The Region [default: AWS_REGION, AWS_DEFAULT_REGION, us-east-1].
        #[arg(long)]
        region: Option<String>,
        /// Where a service's streams go instead of its public name: SERVICE=HOST:PORT (labs, tests).
        #[arg(long = "upstream")]
        upstreams: Vec<String>,
        /// Run CMD as UID[:GID] [default: sudo's caller (SUDO_UID/SUDO_GID), else privlink's user].
        #[arg(long)]
        user: Option<String>,
        /// At exit, print what CMD reached and what it was refused (to stderr).
        #[arg(long)]
        summary: bool,
        /// Print privlink's own log lines (to stderr).
        #[arg(short, long)]
        verbose: bool,
        /// The command and its arguments.
        #[arg(last = true, required = true)]
        command: Vec<String>,
    },
    /// Serve a loopback HTTPS stand-in for a public service (for hand-built labs).
    ///
    /// It answers as AWS does: STS GetCallerIdentity for real, any other
    /// action with an AWS error the CLI and SDKs parse, a plain GET with a
    /// line naming it. Each stand-in makes a CA of its own, with a name no
    /// other has, written to a file named after its service and port.
    Standin {
        /// A DNS name it answers for; repeat for several (the first is the
        /// certificate's common name). The certificate also covers each
        /// catalogued service's endpoint-specific names (`*.ec2.us-east-1.vpce.amazonaws.com`).
        #[arg(long = "name", value_name = "NAME", default_value = "ec2.us-east-1.amazonaws.com")]
        names: Vec<String>,
        /// Loopback port to listen on (0: any free port).
        #[arg(long, default_value_t = 8443)]
        port: u16,
        /// Where to write the CA certificate (PEM) that clients should trust
        /// [default: /tmp/privlink-standin-<first name>-<port>-ca.pem].
        #[arg(long)]
        ca_out: Option<PathBuf>,
    },
}

fn main() -> ExitCode {
    // `info` by default: every failure a client meets (a REJECT, a reset)
    // prints a line, within its rate limit. Colour only on a terminal: a log
    // file or a pipe gets plain text.
    let cli = Cli::parse();
    // `privlink run` says nothing of its own unless asked: its stdout and stderr are CMD's.
    let default_filter = match &cli.command {
        Command::Run { verbose: false, .. } => "privlink=error",
        _ => "privlink=info",
    };
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| default_filter.into()),
        )
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr)
        .init();
    raise_fd_limit();
    // Not root: `run` goes rootless, which must begin while there is one thread.
    let rootless = match &cli.command {
        // SAFETY: geteuid cannot fail.
        Command::Run { user, .. } if unsafe { libc::geteuid() } != 0 => {
            let flag = match user.as_deref().map(privlink::edge::run::parse_user).transpose() {
                Ok(u) => u,
                Err(e) => return fail(e),
            };
            match rootless::caller_as(flag).and_then(|caller| rootless::enter(caller).map(|()| caller)) {
                Ok(caller) => Some(caller),
                Err(e) => return fail(e),
            }
        }
        _ => None,
    };
    // `up` runs the stack, its relays and upstream connects on one thread.
    // Measured at MTU 8500, alternating runs: about 16 / 21 Gbit/s up / down
    // against 12-16 / 17-19 on a multi-thread runtime, with less CPU per byte
    // (fewer cross-thread wake-ups).
    let mut builder = match cli.command {
        Command::Up { .. } => tokio::runtime::Builder::new_current_thread(),
        _ => tokio::runtime::Builder::new_multi_thread(),
    };
    let rt = builder.enable_all().build().expect("tokio runtime");
    match cli.command {
        Command::Check { config, state_dir } => {
            match config_file::load_api(&config) {
                Ok(Some(api)) => return check_api(&api, &state_dir),
                Ok(None) => {}
                Err(e) => return fail(e),
            }
            let config = match config_file::load(&config) {
                Ok(c) => c,
                Err(e) => return fail(e),
            };
            match daemon::plan_readonly(&config, &state_dir) {
                Ok(plan) => {
                    print!("{plan}");
                    println!("config OK");
                    ExitCode::SUCCESS
                }
                Err(e) => fail(e),
            }
        }
        Command::Up { config, state_dir } => {
            if let Some(api) = match config_file::load_api(&config) {
                Ok(s) => s,
                Err(e) => return fail(e),
            } {
                let shutdown = {
                    let _guard = rt.enter();
                    shutdown_signal()
                };
                let ready =
                    |addr| println!("privlink: EC2 API on http://{addr} (aws --endpoint-url http://{addr} ec2 ...)");
                return match rt.block_on(privlink::edge::api::run(
                    &api.settings,
                    api.vpc.as_ref(),
                    &state_dir,
                    ready,
                    shutdown,
                )) {
                    Ok(()) => {
                        println!("privlink: stopped");
                        ExitCode::SUCCESS
                    }
                    Err(e) => fail(e),
                };
            }
            let config_path = config.clone();
            let config = match config_file::load(&config) {
                Ok(c) => c,
                Err(e) => return fail(e),
            };
            // Handlers go in before anything is created, so a signal never kills us mid-way.
            let (shutdown, reload) = {
                let _guard = rt.enter();
                (shutdown_signal(), reload_on_sighup(config_path.clone()))
            };
            let result = rt.block_on(daemon::up(
                &config,
                &state_dir,
                privileges::Privileges::Drop,
                |plan| {
                    print!("{plan}");
                    println!("privlink: ready");
                },
                shutdown,
                Some(reload),
            ));
            match result {
                Ok(report) => {
                    println!("privlink: stopped; counters: {}", report.counters);
                    let (d, f, t) = (&report.dns, &report.forward, &report.dns_tcp);
                    println!(
                        "privlink: dns: queries={} answered={} nodata={} nxdomain={} refused={} forwarded={} truncated={} cached={} \
                         failovers={} ignored={} gave_up={} tcp_opened={} tcp_evicted={} tcp_timed_out={} tcp_idle_closed={} tcp_invalid={}",
                        d.queries, d.answered, d.nodata, d.nxdomain, d.refused, d.forwarded, d.truncated, f.cached,
                        f.failovers, f.ignored, f.gave_up, t.opened, t.evicted, t.timed_out, t.idle_closed, t.invalid
                    );
                    let g = &report.guard;
                    println!(
                        "privlink: guard: accepted={} sg_ingress={} sg_egress={} nacl_ingress={} nacl_egress={}",
                        g.accepted, g.sg_ingress, g.sg_egress, g.nacl_ingress, g.nacl_egress
                    );
                    let per_queue: Vec<String> = report.accepted_per_queue.iter().map(u64::to_string).collect();
                    println!(
                        "privlink: connections: accepted={} refused={} closed={} challenged={} rfc5961_dropped={} accepted_per_queue={}",
                        report.conns.accepted,
                        report.conns.refused,
                        report.conns.closed,
                        report.conns.challenged,
                        report.conns.rfc5961_dropped,
                        per_queue.join(",")
                    );
                    ExitCode::SUCCESS
                }
                Err(e) => fail(e),
            }
        }
        Command::Run { services, region, upstreams, user, summary, verbose: _, command } => {
            let user = match rootless {
                // The caller, mapped: checked by `caller_as` already.
                Some(_) => None,
                None => match privlink::edge::run::user_from(user.as_deref()) {
                    Ok(u) => u,
                    Err(e) => return fail(e),
                },
            };
            let opts = privlink::edge::run::RunOptions {
                services,
                region: privlink::edge::run::region_from_env(region),
                upstreams,
                user,
                rootless,
                summary,
                command,
            };
            match rt.block_on(privlink::edge::run::run(&opts)) {
                Ok(code) => ExitCode::from(code),
                Err(e) => fail(e),
            }
        }
        Command::Standin { names, port, ca_out } => {
            let shutdown = {
                let _guard = rt.enter();
                shutdown_signal()
            };
            let result = rt.block_on(async {
                // Listening first: a second stand-in on a busy port fails before it writes any CA file.
                let standin = standin::TlsStandIn::start_for(&names, port).await?;
                let cert = &standin.cert;
                let ca_out = ca_out.unwrap_or_else(|| standin::default_ca_path(&cert.names[0], standin.addr.port()));
                std::fs::write(&ca_out, &cert.ca_pem)
                    .map_err(|e| std::io::Error::new(e.kind(), format!("{}: {e}", ca_out.display())))?;
                println!(
                    "stand-in for {} on {}; certificate for {}; CA \"{}\" in {}",
                    names.join(", "),
                    standin.addr,
                    cert.names.join(", "),
                    cert.ca_name,
                    ca_out.display()
                );
                shutdown.await;
                Ok::<_, std::io::Error>(())
            });
            match result {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => fail(e),
            }
        }
        Command::Demo => match rt.block_on(demo::run()) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => fail(e),
        },
    }
}

/// Each carried connection holds one descriptor (its upstream socket; the
/// client side lives in smoltcp), so lift the soft limit to the hard one:
/// 10,000 connections need more than the usual 1024.
fn raise_fd_limit() {
    let mut lim = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit/setrlimit on a valid struct.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) == 0 && lim.rlim_cur < lim.rlim_max {
            lim.rlim_cur = lim.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
        }
    }
}

/// `privlink check` of an `[api]` file: its VPC seeds a copy of the state
/// dir's model (nothing is written), as `up` would seed it.
fn check_api(api: &config_file::ApiFile, state_dir: &std::path::Path) -> ExitCode {
    let s = &api.settings;
    println!(
        "api: http://{} ({}, {})",
        s.listen,
        s.region,
        if s.credentials.is_some() { "SigV4" } else { "loopback, unsigned" }
    );
    if let Some(v) = &api.vpc {
        let file = privlink::edge::api::model_file::ModelFile::in_dir(state_dir);
        let mut model = match file.load(&s.region) {
            Ok(m) => m,
            Err(e) => return fail(e),
        };
        let mut random = privlink::edge::daemon::random_id_bytes;
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
        match privlink_core::api::ec2::seed::seed(&mut model, &v.config, &v.fingerprint, now, &mut random) {
            Ok(true) => println!(
                "vpc {}: seeds the model (subnets {}, instances {}, endpoints {})",
                v.config.vpc.id,
                v.config.subnets.len(),
                v.config.instances.len(),
                v.config.endpoints.len()
            ),
            Ok(false) => println!("vpc {}: seeded the state dir's model already", v.config.vpc.id),
            Err(e) => return fail(format!("{}: {e}", v.file)),
        }
    } else {
        println!("no [vpc]: every VPC comes through the API");
    }
    println!("config OK");
    ExitCode::SUCCESS
}

fn fail(e: impl std::fmt::Display) -> ExitCode {
    eprintln!("privlink: error: {e}");
    ExitCode::from(2)
}

/// On SIGHUP, re-reads the config and hands it to the daemon; a bad file is
/// reported and the running config stays.
fn reload_on_sighup(path: PathBuf) -> tokio::sync::mpsc::Receiver<Config> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut hup = signal(SignalKind::hangup()).expect("SIGHUP handler");
    let (tx, rx) = tokio::sync::mpsc::channel(4);
    tokio::spawn(async move {
        while hup.recv().await.is_some() {
            match config_file::load(&path) {
                Ok(c) => {
                    let _ = tx.send(c).await;
                }
                Err(e) => eprintln!("privlink: reload: {e}; keeping the running config"),
            }
        }
    });
    rx
}

/// Installs the SIGTERM/SIGINT handlers now; the future resolves on either.
fn shutdown_signal() -> impl std::future::Future<Output = ()> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler");
    let mut int = signal(SignalKind::interrupt()).expect("SIGINT handler");
    async move {
        tokio::select! {
            _ = term.recv() => {}
            _ = int.recv() => {}
        }
    }
}
