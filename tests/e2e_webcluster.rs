//! The real web cluster, end to end, with real processes: wrk (config/nginx/wrk/traffic.lua)
//! through the nginx load balancer to three nginx backends (scripts/webcluster.sh), rsyslog
//! (imfile -> omkafka) into Kafka, edgeflow as a 2-process timely cluster, MariaDB.
//!
//! - Nothing lost, nothing doubled: a known number of requests, the backends' logs rotated
//!   mid-traffic; every (domain, minute) row and every (domain, minute, status) count in MySQL
//!   equals the count this test takes from the backends' access log files; the top clients are
//!   the generator's addresses, never the balancer's.
//! - Balancing, read from the backends' logs: round robin even (±5%), weights in their ratio
//!   (±5%), ip_hash keeps every client on one backend, least_conn sends less to a slow backend.
//!
//! nginx, wrk and rsyslog come from scripts/setup.sh; a missing one fails with that advice.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU16, Ordering};
use std::time::{Duration, Instant};

use common::*;
use mysql_async::prelude::Queryable;

const REPO: &str = env!("CARGO_MANIFEST_DIR");

/// `n` consecutive free loopback ports (checked by binding each; nothing holds them after).
fn free_ports(n: u16) -> u16 {
    static NEXT: AtomicU16 = AtomicU16::new(0);
    let seed = (std::process::id() % 1000) as u16;
    for _ in 0..200 {
        let slot = NEXT.fetch_add(1, Ordering::Relaxed);
        let base = 21_000 + (seed.wrapping_mul(37).wrapping_add(slot.wrapping_mul(11)) % 20_000);
        if (0..n).all(|i| TcpListener::bind(("127.0.0.1", base + i)).is_ok()) {
            return base;
        }
    }
    panic!("no {n} consecutive free ports found on 127.0.0.1");
}

/// One web cluster (balancer + 3 backends, optionally the shipper) in its own run directory,
/// stopped on drop.
struct WebCluster {
    run: tempfile::TempDir,
    port: u16,
    method: String,
}

impl WebCluster {
    fn start(method: &str, slow_backend: Option<u8>) -> WebCluster {
        let run = tempfile::Builder::new().prefix("edgeflow-web").tempdir().expect("run dir");
        let cluster = WebCluster { run, port: free_ports(4), method: method.to_string() };
        let mut extra = vec![];
        if let Some(n) = slow_backend {
            extra.push(("WEB_SLOW_BACKEND", n.to_string()));
        }
        cluster.script(&["start"], &extra);
        cluster
    }

    /// Runs scripts/webcluster.sh with this cluster's settings; panics with its output on failure.
    fn script(&self, args: &[&str], extra: &[(&str, String)]) {
        let mut command = Command::new(Path::new(REPO).join("scripts/webcluster.sh"));
        command
            .args(args)
            .env("WEB_RUN_DIR", self.run.path())
            .env("WEB_PORT_BASE", self.port.to_string())
            .env("WEB_METHOD", &self.method);
        for (key, value) in extra {
            command.env(key, value);
        }
        let output = command.output().expect("run scripts/webcluster.sh");
        assert!(
            output.status.success(),
            "scripts/webcluster.sh {} failed ({}):\n{}{}",
            args.join(" "),
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }

    fn manifest(&self) -> PathBuf {
        self.run.path().join("www/manifest.txt")
    }

    /// Every line of backend `n`'s access logs (rotated files first, then the current one).
    fn backend_lines(&self, n: usize) -> Vec<String> {
        let dir = self.run.path().join(format!("backend-{n}/logs"));
        let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
            .expect("backend log dir")
            .map(|e| e.unwrap().path())
            .filter(|p| p.file_name().unwrap().to_string_lossy().starts_with("access.log"))
            .collect();
        // access.log.1, access.log.2, …, then access.log.
        files.sort_by_key(|p| {
            let name = p.file_name().unwrap().to_string_lossy().to_string();
            name.strip_prefix("access.log.").and_then(|n| n.parse::<u32>().ok()).unwrap_or(u32::MAX)
        });
        files.iter().flat_map(|f| std::fs::read_to_string(f).unwrap().lines().map(str::to_string).collect::<Vec<_>>()).collect()
    }

    fn backend_counts(&self) -> [usize; 3] {
        [1, 2, 3].map(|n| self.backend_lines(n).len())
    }

    /// Starts wrk with the traffic script: `threads` threads and `connections` connections for
    /// at most `seconds`, with `WRK_*` settings.
    fn wrk(&self, threads: u32, connections: u32, seconds: u32, env: &[(&str, String)]) -> Child {
        let mut command = Command::new("wrk");
        command
            .args(["-t", &threads.to_string(), "-c", &connections.to_string(), "-d", &format!("{seconds}s"), "--timeout", "10s"])
            .arg("-s")
            .arg(Path::new(REPO).join("config/nginx/wrk/traffic.lua"))
            .arg(format!("http://127.0.0.1:{}", self.port))
            .env("WRK_MANIFEST", self.manifest())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (key, value) in env {
            command.env(key, value);
        }
        command.spawn().unwrap_or_else(|err| panic!("cannot start wrk ({err}): run scripts/setup.sh, which installs it"))
    }

    /// Sends exactly `threads × per_thread` requests (one connection per thread, each thread
    /// stops after its quota) and waits until the backends have logged them all.
    fn send_exactly(&self, threads: u32, per_thread: u32, env: &[(&str, String)]) {
        let mut env = env.to_vec();
        env.push(("WRK_REQUESTS_PER_THREAD", per_thread.to_string()));
        let wrk = self.wrk(threads, threads, 100, &env);
        self.wait_for_lines(wrk, (threads * per_thread) as usize);
    }

    /// Waits until the backends' logs hold `expected` lines, then interrupts wrk (which sleeps
    /// out its duration even when every thread has stopped) and checks that none is extra.
    fn wait_for_lines(&self, mut wrk: Child, expected: usize) {
        let started = Instant::now();
        loop {
            let total: usize = self.backend_counts().iter().sum();
            if total >= expected {
                break;
            }
            if let Some(status) = wrk.try_wait().unwrap() {
                let output = wrk.wait_with_output().unwrap();
                panic!(
                    "wrk ended ({status}) with {total} of {expected} requests logged:\n{}{}",
                    String::from_utf8_lossy(&output.stdout),
                    String::from_utf8_lossy(&output.stderr)
                );
            }
            assert!(started.elapsed() < Duration::from_secs(90), "only {total} of {expected} requests logged after 90 s");
            std::thread::sleep(Duration::from_millis(100));
        }
        interrupt(&mut wrk);
        let output = wrk.wait_with_output().unwrap();
        std::thread::sleep(Duration::from_millis(300));
        let total: usize = self.backend_counts().iter().sum();
        assert_eq!(total, expected, "backends logged {total} requests, {expected} were sent\n{}", String::from_utf8_lossy(&output.stdout));
    }
}

impl Drop for WebCluster {
    fn drop(&mut self) {
        let _ = Command::new(Path::new(REPO).join("scripts/webcluster.sh"))
            .arg("stop")
            .env("WEB_RUN_DIR", self.run.path())
            .env("WEB_PORT_BASE", self.port.to_string())
            .status();
    }
}

/// The job's processes, killed if the test fails before it stops them itself.
struct Processes(Vec<Job>);

impl Drop for Processes {
    fn drop(&mut self) {
        for job in &mut self.0 {
            let _ = job.child.kill();
            let _ = job.child.wait();
        }
    }
}

fn interrupt(child: &mut Child) {
    let _ = Command::new("kill").args(["-INT", &child.id().to_string()]).status();
}

/// `(domain, minute_start, status)` → requests, from `domain_status_minute`.
fn read_status_minutes(url: &str) -> BTreeMap<(String, i64, u16), u64> {
    runtime().block_on(async {
        let mut conn = mysql_async::Conn::from_url(url).await.expect("connect");
        conn.query_drop("SET time_zone = '+00:00'").await.unwrap();
        let rows: Vec<(String, i64, u16, u64)> = conn
            .query("SELECT domain, CAST(UNIX_TIMESTAMP(minute_start) AS SIGNED), status, requests FROM domain_status_minute")
            .await
            .expect("read domain_status_minute");
        conn.disconnect().await.unwrap();
        rows.into_iter().map(|(d, m, s, r)| ((d, m, s), r)).collect()
    })
}

fn read_top_client_ips(url: &str) -> BTreeSet<String> {
    runtime().block_on(async {
        let mut conn = mysql_async::Conn::from_url(url).await.expect("connect");
        let rows: Vec<String> = conn.query("SELECT DISTINCT client_ip FROM top_clients").await.expect("read top_clients");
        conn.disconnect().await.unwrap();
        rows.into_iter().collect()
    })
}

/// The client addresses wrk's traffic script uses: 198.18.0.0/15.
fn is_generator_address(ip: &str) -> bool {
    ip.starts_with("198.18.") || ip.starts_with("198.19.")
}

#[test]
fn nothing_lost_nothing_doubled_from_nginx_through_rsyslog_kafka_and_a_two_process_job() {
    let services = Services::from_env();
    let topic = fresh_topic(&services, 4);
    // Half-way through the traffic, the backends' logs are rotated.
    ship_and_compare(&services, &topic, |web| {
        web.script(&["rotate"], &[]);
        for n in 1..=3 {
            let rotated = web.run.path().join(format!("backend-{n}/logs/access.log.1"));
            assert!(rotated.exists(), "{} is missing after rotate", rotated.display());
        }
    });
}

/// The whole path: a known number of requests through the balancer, `mid_traffic` called once
/// half of them are logged, rsyslog into `topic`, the 2-process job; then MySQL against the
/// backends' logs.
fn ship_and_compare(services: &Services, topic: &str, mid_traffic: impl FnOnce(&WebCluster)) {
    const THREADS: u32 = 4;
    const PER_THREAD: u32 = 1_500;
    let topic = topic.to_string();
    let url = fresh_database(services, "web");
    let logs = tempfile::tempdir().unwrap();

    let web = WebCluster::start("round_robin", None);
    let env = vec![
        ("EDGEFLOW__KAFKA__BROKERS", services.brokers.as_str()),
        ("EDGEFLOW__KAFKA__TOPIC", topic.as_str()),
        ("EDGEFLOW__MYSQL__URL", url.as_str()),
    ];
    assert_success(&edgeflow(&["migrate", "-c", "config/local.toml"], &env), "migrate");

    // edgeflow as a cluster: two processes, two workers each, a hostfile on loopback.
    let timely = free_ports(2);
    let hosts = logs.path().join("hosts");
    std::fs::write(&hosts, format!("127.0.0.1:{timely}\n127.0.0.1:{}\n", timely + 1)).unwrap();
    let hosts = hosts.to_str().unwrap();
    let mut jobs = Processes((0..2)
        .map(|p| {
            let p = p.to_string();
            Job::spawn(
                &["run", "-c", "config/local.toml", "-n", "2", "-p", &p, "-w", "2", "-h", hosts],
                &env,
                &logs.path().join(format!("job-{p}.log")),
            )
        })
        .collect());

    web.script(&["ship", "start"], &[("SHIP_BROKERS", services.brokers.clone()), ("SHIP_TOPIC", topic.clone())]);

    // The known number of requests, paced a little; the logs are rotated half-way through.
    let expected = (THREADS * PER_THREAD) as usize;
    let wrk = web.wrk(
        THREADS,
        THREADS,
        100,
        &[("WRK_REQUESTS_PER_THREAD", PER_THREAD.to_string()), ("WRK_DELAY_MS", "2".into()), ("WRK_CLIENTS", "500".into())],
    );
    let started = Instant::now();
    while web.backend_counts().iter().sum::<usize>() < expected / 2 {
        assert!(started.elapsed() < Duration::from_secs(60), "traffic did not reach half of {expected} requests in 60 s");
        std::thread::sleep(Duration::from_millis(50));
    }
    mid_traffic(&web);
    web.wait_for_lines(wrk, expected);

    let lines: Vec<String> = (1..=3).flat_map(|n| web.backend_lines(n)).collect();
    assert_eq!(lines.len(), expected);

    // Everything shipped: the topic holds exactly one message per logged line.
    let started = Instant::now();
    let ends = loop {
        let ends = end_offsets(services, &topic, 4);
        let shipped: i64 = ends.values().sum();
        if shipped as usize >= expected {
            assert_eq!(shipped as usize, expected, "rsyslog shipped {shipped} messages for {expected} lines");
            break ends;
        }
        assert!(started.elapsed() < Duration::from_secs(60), "rsyslog shipped {shipped} of {expected} lines in 60 s");
        std::thread::sleep(Duration::from_millis(200));
    };
    // Keyed by file: each backend's lines are in one partition, so at most 3 are used.
    assert!(ends.values().filter(|e| **e > 0).count() <= 3, "lines of one file spread over partitions: {ends:?}");

    // The job has read and committed every message; then SIGTERM commits the epochs still open.
    let started = Instant::now();
    loop {
        let committed: BTreeMap<i32, i64> = runtime().block_on(async {
            let Ok(mut conn) = mysql_async::Conn::from_url(&url).await else { return BTreeMap::new() };
            let rows: Vec<(i32, Option<i64>)> =
                conn.query("SELECT partition_id, resume_offset FROM checkpoints").await.unwrap_or_default();
            let _ = conn.disconnect().await;
            rows.into_iter().filter_map(|(p, o)| o.map(|o| (p, o))).collect()
        });
        if ends.iter().filter(|(_, end)| **end > 0).all(|(p, end)| committed.get(p).is_some_and(|c| c >= end)) {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(90),
            "job not caught up after 90 s: committed {committed:?}, ends {ends:?}\n{}\n{}",
            jobs.0[0].log_text(),
            jobs.0[1].log_text()
        );
        std::thread::sleep(Duration::from_millis(250));
    }
    for job in &jobs.0 {
        let sent = Command::new("kill").args(["-TERM", &job.child.id().to_string()]).status().unwrap();
        assert!(sent.success());
    }
    for job in &mut jobs.0 {
        let status = job.wait();
        assert!(status.success(), "edgeflow process exited with {status}:\n{}", job.log_text());
    }

    // MySQL against the logs, read by this test with its own parser.
    let oracle = Oracle::default();
    let expected_rows = oracle.domain_minutes(lines.iter().map(String::as_str));
    eprintln!(
        "{expected} requests, per backend {:?}, {} messages in partitions {ends:?}, {} (domain, minute) rows",
        web.backend_counts(),
        ends.values().sum::<i64>(),
        expected_rows.len()
    );
    assert_rows_equal(&read_domain_minutes(&url), &expected_rows);
    let mut statuses: BTreeMap<(String, i64, u16), u64> = BTreeMap::new();
    for line in &lines {
        let parsed = oracle.parse_cdn(line).unwrap_or_else(|| panic!("oracle cannot parse {line:?}"));
        *statuses.entry((parsed.domain, parsed.event_sec - parsed.event_sec.rem_euclid(60), parsed.status)).or_default() += 1;
    }
    assert!(statuses.keys().map(|k| k.2).collect::<BTreeSet<_>>().len() >= 5, "too few distinct statuses: {statuses:?}");
    assert_eq!(read_status_minutes(&url), statuses, "domain_status_minute differs from the logs");
    assert!(read_reject_counts(&url).is_empty(), "rejects: {:?}", read_reject_counts(&url));

    // The client is the generator's address (from X-Forwarded-For), never the balancer's.
    let clients = read_top_client_ips(&url);
    assert!(!clients.is_empty());
    let wrong: Vec<&String> = clients.iter().filter(|ip| !is_generator_address(ip)).collect();
    assert!(wrong.is_empty(), "top_clients holds addresses that are not the generator's clients: {wrong:?}");
}

/// Requests per backend for `requests` small requests under `method`.
fn balanced_counts(method: &str, threads: u32, per_thread: u32, env: &[(&str, String)]) -> (WebCluster, [usize; 3]) {
    let web = WebCluster::start(method, None);
    let mut env = env.to_vec();
    env.push(("WRK_HOST".into(), "api.example.org".into()));
    env.push(("WRK_PATH".into(), "/api/items-1.json".into()));
    web.send_exactly(threads, per_thread, &env);
    let counts = web.backend_counts();
    (web, counts)
}

fn assert_share(counts: [usize; 3], weights: [usize; 3], what: &str) {
    let total: usize = counts.iter().sum();
    let weight_total: usize = weights.iter().sum();
    for i in 0..3 {
        let want = total as f64 * weights[i] as f64 / weight_total as f64;
        let got = counts[i] as f64;
        assert!((got - want).abs() <= want * 0.05, "{what}: backend {} got {got} of {total}, expected {want:.0} ± 5% (all: {counts:?})", i + 1);
    }
}

#[test]
fn round_robin_spreads_requests_evenly() {
    let (_web, counts) = balanced_counts("round_robin", 4, 750, &[]);
    eprintln!("round robin: requests per backend {counts:?}");
    assert_share(counts, [1, 1, 1], "round robin");
}

#[test]
fn weighted_round_robin_follows_the_weights() {
    // config/nginx/upstream/weighted.conf: weight 3, 2, 1.
    let (_web, counts) = balanced_counts("weighted", 4, 750, &[]);
    eprintln!("weighted 3:2:1: requests per backend {counts:?}");
    assert_share(counts, [3, 2, 1], "weighted");
}

#[test]
fn ip_hash_keeps_every_client_on_one_backend() {
    let (web, counts) = balanced_counts("ip_hash", 4, 750, &[("WRK_CLIENTS", "400".into())]);
    let oracle = Oracle::default();
    let mut backends_of: BTreeMap<String, BTreeSet<usize>> = BTreeMap::new();
    for n in 1..=3 {
        for line in web.backend_lines(n) {
            let client = oracle.captures(&line).unwrap_or_else(|| panic!("cannot parse {line:?}"))[1].to_string();
            assert!(is_generator_address(&client), "backend logged {client}, not a generator client: {line}");
            backends_of.entry(client).or_default().insert(n);
        }
    }
    eprintln!("ip_hash: requests per backend {counts:?}, {} clients", backends_of.len());
    assert!(backends_of.len() >= 100, "only {} distinct clients reached the backends", backends_of.len());
    let split: Vec<_> = backends_of.iter().filter(|(_, b)| b.len() > 1).take(5).collect();
    assert!(split.is_empty(), "clients served by more than one backend: {split:?}");
    assert!(counts.iter().all(|c| *c > 0), "ip_hash used only some backends: {counts:?}");
}

#[test]
fn least_conn_sends_fewer_requests_to_a_slow_backend() {
    // Backend 2 sends every response at 64 KiB/s, so a 260 KB image takes it about 4 s; the
    // others answer at once. 8 connections for 6 s, unpaced.
    let web = WebCluster::start("least_conn", Some(2));
    let mut wrk = web.wrk(
        4,
        8,
        6,
        &[("WRK_HOST", "img.example.com".into()), ("WRK_PATH", "/img/8.jpg".into())],
    );
    let status = wrk.wait().unwrap();
    assert!(status.success(), "wrk failed: {status}");
    std::thread::sleep(Duration::from_millis(500));
    let counts = web.backend_counts();
    let total: usize = counts.iter().sum();
    eprintln!("least_conn, backend 2 slow: requests per backend {counts:?}");
    assert!(total >= 300, "too little traffic for a comparison: {counts:?}");
    assert!(
        counts[1] * 20 < total && counts[1] < counts[0] && counts[1] < counts[2],
        "least_conn should send the slow backend 2 under 5% of requests: {counts:?}"
    );
}
