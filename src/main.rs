//! The `edgeflow` command: parses arguments into validated settings and hands over. Errors
//! become exit codes only here.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};
use edgeflow::billing::report::ReportFormat;
use edgeflow::billing::{self, Month, Proration, Scope};
use edgeflow::config::Settings;
use edgeflow::gen::output::{self, GenRun, GenTarget};
use edgeflow::gen::{GenConfig, OutputFormat};
use edgeflow::job::{self, Cluster, JobError, RunOptions, SourceSpec};
use edgeflow::sink::{SinkError, SinkTarget};
use edgeflow::sink::schema;
use edgeflow::telemetry;

#[derive(Parser)]
#[command(name = "edgeflow", version, about = "Real-time access-log analytics and CDN billing")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the job: read the source, aggregate, write MySQL.
    // `-h` is timely's hostfile flag, so help is `--help` only.
    #[command(disable_help_flag = true)]
    Run {
        #[arg(long, short = 'c', default_value = "config/local.toml")]
        config: PathBuf,
        /// `kafka` (the configured topic) or `file:PATH[,PATH...]`: files (plain or gzip),
        /// directories (their files) and `*`/`?` patterns in file names, each file its own
        /// partition; `file:-` reads standard input.
        #[arg(long, default_value = "kafka", value_parser = SourceSpec::parse)]
        source: SourceSpec,
        /// Worker threads per process.
        #[arg(short = 'w', long, default_value_t = 1)]
        workers: usize,
        /// Number of processes in the timely cluster.
        #[arg(short = 'n', long, default_value_t = 1)]
        processes: usize,
        /// This process's index in the cluster.
        #[arg(short = 'p', long, default_value_t = 0)]
        process: usize,
        /// Hostfile: one `host:port` per process, in process order.
        #[arg(short = 'h', long)]
        hostfile: Option<PathBuf>,
        /// Kafka: stop once every partition has reached the end of its log.
        #[arg(long)]
        exit_at_end: bool,
        /// Kafka: when retention has deleted messages a checkpoint needs replayed, continue
        /// from the oldest retained offset instead of refusing to start (the loss is logged).
        #[arg(long)]
        accept_data_loss: bool,
        /// Where results go: `mysql`, or `null` to measure the job without a database (no
        /// checkpoints are read or written).
        #[arg(long, value_enum, default_value = "mysql")]
        sink: SinkTarget,
        #[arg(long, action = clap::ArgAction::Help)]
        help: Option<bool>,
    },
    /// Generate realistic CDN access-log traffic, deterministically from a seed.
    Gen {
        #[arg(long, short = 'c', default_value = "config/local.toml")]
        config: PathBuf,
        /// `file:PATH`, `-` (standard output) or `kafka` (the configured topic).
        #[arg(long, default_value = "-")]
        out: String,
        /// Partitions of the topic if `--out kafka` has to create it.
        #[arg(long, default_value_t = 4)]
        partitions: i32,
        /// Lines to write; 0 means endless (stop with --seconds or Ctrl-C).
        #[arg(long, default_value_t = 100_000)]
        lines: u64,
        #[arg(long, default_value_t = 42)]
        seed: u64,
        /// `combined`, `main`, `cdn` or `json`.
        #[arg(long, default_value = "cdn")]
        format: OutputFormat,
        /// Wrap each line in a Filebeat 8.x JSON event.
        #[arg(long)]
        filebeat: bool,
        #[arg(long, default_value_t = 50)]
        domains: usize,
        #[arg(long, default_value_t = 100_000)]
        clients: usize,
        /// Event-time rate, lines per second.
        #[arg(long, default_value_t = 1000.0)]
        rate: f64,
        /// Start time (Unix ms) of the event clock; ignored with --realtime.
        #[arg(long)]
        start_ms: Option<i64>,
        /// Maximum disorder of event times, ms.
        #[arg(long, default_value_t = 2000)]
        disorder_ms: i64,
        /// Fraction of lines emitted `--late-ms` after their event time.
        #[arg(long, default_value_t = 0.001)]
        late_fraction: f64,
        #[arg(long, default_value_t = 120_000)]
        late_ms: i64,
        /// Pace output to the wall clock, starting now (live traffic).
        #[arg(long)]
        realtime: bool,
        /// Stop after this many seconds.
        #[arg(long)]
        seconds: Option<u64>,
    },
    /// Create or upgrade the MySQL schema.
    Migrate {
        #[arg(long, short = 'c', default_value = "config/local.toml")]
        config: PathBuf,
    },
    /// Serve the dashboard: pages and JSON API over MySQL, through the read-only user.
    Serve {
        #[arg(long, short = 'c', default_value = "config/local.toml")]
        config: PathBuf,
        /// Listen address, overriding `dashboard.bind` (`127.0.0.1:0` picks a free port).
        #[arg(long)]
        bind: Option<String>,
    },
    /// 95th-percentile CDN bills and traffic for a month, from the 5-minute bandwidth samples.
    Billing {
        #[arg(long, short = 'c', default_value = "config/local.toml")]
        config: PathBuf,
        /// The month to bill, `YYYY-MM` (UTC).
        #[arg(long)]
        month: Month,
        /// Bill only this domain.
        #[arg(long, conflicts_with = "account")]
        domain: Option<String>,
        /// Bill only this account (domains mapped by `clean.accounts`), then each of its domains.
        #[arg(long)]
        account: Option<String>,
        /// `table`, `csv` or `json`.
        #[arg(long, default_value = "table")]
        format: ReportFormat,
        /// Bill every domain over the whole month: no effective-days proration for domains
        /// that started or ended within it.
        #[arg(long)]
        whole_month: bool,
    },
}

/// Exit status of an instance fenced out by a newer one (README): `EX_TEMPFAIL`, so a
/// supervisor can tell "another instance owns the job" from a failure.
const FENCED_EXIT_CODE: u8 = 75;

fn main() -> ExitCode {
    telemetry::init_logging();
    match run(Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("edgeflow: {err:#}");
            // Returning from `main` ends the process even while worker threads still run
            // (a stopped sink leaves them).
            ExitCode::from(exit_status(&err))
        }
    }
}

/// The exit status for `err`: 75 when fenced out, 1 for anything else.
fn exit_status(err: &anyhow::Error) -> u8 {
    match err.downcast_ref::<JobError>() {
        Some(JobError::Sink(SinkError::Fenced(_))) => FENCED_EXIT_CODE,
        _ => 1,
    }
}

fn load(config: &PathBuf) -> anyhow::Result<Settings> {
    Settings::load(Some(config), std::env::vars()).with_context(|| format!("loading {}", config.display()))
}

fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Run { config, source, workers, processes, process, hostfile, exit_at_end, accept_data_loss, sink, help: _ } => {
            let settings = load(&config)?;
            let cluster = Cluster { workers, processes, process, hostfile };
            job::run(settings, RunOptions { source, cluster, exit_at_end, accept_data_loss, sink })?;
            Ok(())
        }
        Command::Gen {
            config, out, partitions, lines, seed, format, filebeat, domains, clients, rate, start_ms, disorder_ms,
            late_fraction, late_ms, realtime, seconds,
        } => {
            let settings = load(&config)?;
            let target = match out.as_str() {
                "kafka" => GenTarget::Kafka { partitions },
                "-" => GenTarget::File(PathBuf::from("-")),
                other => match other.strip_prefix("file:") {
                    Some(path) if !path.is_empty() => GenTarget::File(PathBuf::from(path)),
                    _ => anyhow::bail!("--out must be `file:PATH`, `-` or `kafka`, got `{other}`"),
                },
            };
            let defaults = GenConfig::default();
            let gen_config = GenConfig {
                seed,
                lines,
                format,
                filebeat,
                domains,
                clients,
                rate_per_sec: rate,
                start_ms: start_ms.unwrap_or(defaults.start_ms),
                disorder_ms,
                late_fraction,
                late_ms,
                ..defaults
            };
            output::run(&settings.kafka, GenRun { config: gen_config, target, realtime, seconds })?;
            Ok(())
        }
        Command::Serve { config, bind } => {
            let settings = load(&config)?;
            edgeflow::dashboard::serve(&settings, bind)?;
            Ok(())
        }
        Command::Billing { config, month, domain, account, format, whole_month } => {
            let settings = load(&config)?;
            let scope = match (domain, account) {
                (Some(domain), _) => Scope::domain(&domain)?,
                (None, Some(account)) => Scope::Account(account),
                (None, None) => Scope::All,
            };
            let proration = if whole_month { Proration::WholeMonth } else { Proration::ByActivity };
            let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?.as_secs() as i64;
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
            let series = runtime.block_on(billing::store::load(&settings.mysql.url, month, &scope, settings.decoder().rules()))?;
            let bills = billing::bill_month(month, now, proration, &scope, &series)?;
            print!("{}", billing::report::render(month, &bills, format));
            Ok(())
        }
        Command::Migrate { config } => {
            let settings = load(&config)?;
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
            let applied = runtime.block_on(schema::migrate(&settings.mysql.url))?;
            if applied.is_empty() {
                println!("schema is up to date (version {})", schema::latest_version());
            } else {
                println!("applied migrations {applied:?}; schema is at version {}", schema::latest_version());
            }
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use edgeflow::sink::mysql::CommitError;

    use super::*;

    #[test]
    fn a_fenced_sink_exits_75_and_every_other_failure_1() {
        let fenced = CommitError::Fenced { mine: 3, current: 4, source_name: "kafka:access".into() };
        let err = anyhow::Error::from(JobError::Sink(SinkError::from(fenced))).context("running the job");
        assert_eq!(exit_status(&err), 75);
        assert!(format!("{err:#}").contains("fenced"), "{err:#}");
        assert_eq!(exit_status(&anyhow::Error::from(JobError::Sink(SinkError::WriterGone))), 1);
        assert_eq!(exit_status(&anyhow::anyhow!("--out must be `file:PATH`")), 1);
    }
}
