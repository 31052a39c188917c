//! End-to-end benchmark of a running Wharf over loopback.
//!
//! `cargo bench --bench registry` starts the release `wharf` binary on a free
//! port with a fresh data folder, then measures:
//! - push of a 1 GiB random blob: monolithic, and chunked at 8 MiB and 64 MiB;
//! - pull of that blob, by the tokio client the rest uses and by a blocking one;
//! - small blob GETs one after another on one keep-alive connection (latency);
//! - manifest GET by tag with `wrk -t2 -c64` (Debian package `wrk`);
//! - eight concurrent pulls of a 128 MiB blob, aggregate;
//! - the server's peak RSS (VmHWM) over the whole run;
//! - first, the machine's limits (see `registry/limits.rs`): loopback
//!   `sendfile` and `read`+`write` copies, single-core SHA-256, file writes;
//!   each Wharf figure is also printed as a fraction of its limit, and the
//!   limits a goal names are measured again in rounds alternating with
//!   Wharf's runs (best against best, and the median of the rounds' ratios);
//! - for reference, single-core SHA-256 of `openssl speed -evp sha256`.
//!
//! Environment: `BENCH_BLOB_MIB` (default 1024), `BENCH_WRK_SECONDS` (default 10),
//! `BENCH_DATA_DIR` (where the server keeps its data; default the system temp folder),
//! `BENCH_WHARF_BIN` (another `wharf` binary to measure, for A/B comparisons).
//!
//! Soak mode (`BENCH_SOAK_SECONDS=300`): instead of the above, a mixed load for
//! that long: `BENCH_SOAK_WORKERS` (default 32) workers, each looping a push
//! (a config and a fresh `BENCH_SOAK_BLOB_KIB` (256) KiB layer as two-step
//! monolithic uploads, a manifest under one of five tags per worker, eight
//! repositories) and a pull (the manifest by tag, the layer). It prints the
//! server's RSS and the request rate every 10 s, then the steady state (mean
//! RSS of the last minute) and the growth from the end of minute two to the end.
//! `BENCH_SERVER_PRELOAD` sets the server's `LD_PRELOAD` (another allocator).
//! The server inherits the environment, so `WHARF_STORAGE_BACKEND=s3` and the
//! `WHARF_STORAGE_S3_*` keys measure the S3 backend (see `tests/e2e/lib.sh`
//! for a local SeaweedFS).

#![allow(clippy::expect_used, reason = "a benchmark aborts on any failure")]
#![allow(clippy::print_stdout, reason = "the report is the output")]

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

#[path = "registry/limits.rs"]
mod limits;

use rand::RngCore;
use sha2::{Digest, Sha256};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const MIB: usize = 1024 * 1024;
/// The blob of the concurrent pulls.
const CONCURRENT_MIB: usize = 128;

struct Server {
    child: Child,
    base: String,
    _dir: tempfile::TempDir,
}

impl Server {
    fn start() -> Server {
        // BENCH_DATA_DIR picks the file system under test (e.g. /dev/shm to leave the disk out).
        let dir = match std::env::var("BENCH_DATA_DIR") {
            Ok(root) => tempfile::tempdir_in(root).expect("tempdir"),
            Err(_) => tempfile::tempdir().expect("tempdir"),
        };
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .expect("port")
            .local_addr()
            .expect("addr")
            .port();
        // BENCH_WHARF_BIN compares another build (A/B) with the same client.
        let binary = std::env::var("BENCH_WHARF_BIN")
            .unwrap_or_else(|_| env!("CARGO_BIN_EXE_wharf").to_string());
        let child = Command::new(binary)
            .args([
                "serve",
                "--listen",
                &format!("127.0.0.1:{port}"),
                "--data-dir",
            ])
            .arg(dir.path())
            .env("RUST_LOG", "warn")
            // Compare allocators without rebuilding, e.g. Debian's libjemalloc2.
            .env(
                "LD_PRELOAD",
                std::env::var("BENCH_SERVER_PRELOAD").unwrap_or_default(),
            )
            .stdout(Stdio::null())
            .spawn()
            .expect("start wharf");
        let base = format!("http://127.0.0.1:{port}");
        for _ in 0..100 {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Server {
            child,
            base,
            _dir: dir,
        }
    }

    /// Peak resident set size in MiB, from /proc.
    fn peak_rss_mib(&self) -> f64 {
        self.status_mib("VmHWM:")
    }

    /// CPU seconds the server has used, all threads.
    fn cpu_seconds(&self) -> f64 {
        let stat =
            std::fs::read_to_string(format!("/proc/{}/stat", self.child.id())).unwrap_or_default();
        // Fields after the command's closing parenthesis; utime and stime are 14 and 15.
        let fields: Vec<&str> = stat
            .rsplit_once(')')
            .map_or(Vec::new(), |(_, rest)| rest.split_whitespace().collect());
        let ticks = |i: usize| fields.get(i).and_then(|v| v.parse::<f64>().ok());
        // SAFETY: sysconf only reads a system constant.
        let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
        match (ticks(11), ticks(12)) {
            (Some(user), Some(system)) => (user + system) / hz,
            _ => f64::NAN,
        }
    }

    /// Waits (up to 30 s) until the server is idle: at most one clock tick
    /// (10 ms) of CPU in 100 ms. A staged file's name goes at once; freeing
    /// its pages takes longer, so the folder cannot tell.
    async fn settle(&self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let cpu = self.cpu_seconds();
            tokio::time::sleep(Duration::from_millis(100)).await;
            if self.cpu_seconds() - cpu < 0.015 || Instant::now() > deadline {
                return;
            }
        }
    }

    /// Resident set size now, in MiB.
    fn rss_mib(&self) -> f64 {
        self.status_mib("VmRSS:")
    }

    fn status_mib(&self, key: &str) -> f64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .unwrap_or_default();
        status
            .lines()
            .find_map(|l| l.strip_prefix(key))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
            .map_or(f64::NAN, |kb| kb / 1024.0)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn digest(data: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(data)))
}

fn random_blob(len: usize) -> Vec<u8> {
    let mut data = vec![0u8; len];
    rand::rng().fill_bytes(&mut data);
    data
}

fn mb_per_s(bytes: usize, elapsed: Duration) -> f64 {
    bytes as f64 / 1e6 / elapsed.as_secs_f64()
}

/// Single-core SHA-256 throughput of OpenSSL in MB/s (16 KiB blocks), if available.
fn openssl_sha256() -> Option<f64> {
    let out = Command::new("openssl")
        .args([
            "speed", "-seconds", "3", "-bytes", "16384", "-evp", "sha256",
        ])
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text
        .lines()
        .find(|l| l.trim_start().starts_with("sha256") || l.trim_start().starts_with("SHA256"))?;
    let last = line.split_whitespace().last()?.trim_end_matches('k');
    Some(last.parse::<f64>().ok()? * 1000.0 / 1e6)
}

/// Rounds in which Wharf and the limit it is compared with each run once.
/// A push round takes seconds (a 1 GiB push each, then waits for the server
/// to go idle); a pull round well under one, and single pulls swing by a
/// third from one to the next on a VM, so pulls take more rounds for a
/// steadier median.
const ROUNDS: usize = 5;
const PULL_ROUNDS: usize = 11;
const CONCURRENT_ROUNDS: usize = 5;

/// Runs `wharf` and `limit` one after the other, the limit first in even
/// rounds and last in odd ones, so neither always inherits the other's
/// aftermath (freed pages, a warm cache).
async fn alternate<W, L>(
    round: usize,
    wharf: impl Future<Output = W>,
    limit: impl Future<Output = L>,
) -> (W, L) {
    if round.is_multiple_of(2) {
        let limit = limit.await;
        (wharf.await, limit)
    } else {
        let wharf = wharf.await;
        (wharf, limit.await)
    }
}

/// Wharf's figures and a limit's, measured in alternating rounds: the VM's
/// speed drifts by a third within minutes, so a figure is compared only
/// with runs of the same minutes. Two ratios: best against best (each
/// side's peak), and the median of the per-round ratios (runs made back to
/// back; robust to one lucky run).
#[derive(Default)]
struct Rounds {
    /// (Wharf, limit) per round, MB/s.
    runs: Vec<(f64, f64)>,
}

impl Rounds {
    fn add(&mut self, wharf: f64, limit: f64) {
        self.runs.push((wharf, limit));
    }

    fn wharf(&self) -> f64 {
        self.runs.iter().map(|r| r.0).fold(0.0, f64::max)
    }

    fn limit(&self) -> f64 {
        self.runs.iter().map(|r| r.1).fold(0.0, f64::max)
    }

    /// Each round's Wharf figure as a fraction of `goal(limit)` for that
    /// round's limit, lowest to highest, and their median (of an odd count).
    fn spread(&self, goal: impl Fn(f64) -> f64) -> String {
        let mut ratios: Vec<f64> = self.runs.iter().map(|&(w, l)| w / goal(l)).collect();
        ratios.sort_by(f64::total_cmp);
        let median = ratios.get(ratios.len() / 2).copied().unwrap_or(f64::NAN);
        let all: Vec<String> = ratios.iter().map(|r| format!("{r:.2}")).collect();
        format!("per round {}, median {median:.2}", all.join(" "))
    }
}

/// Where the local file system backend keeps the blob `digest` under the
/// data folder `dir` (its store's root is `<data>/blobs`), if it is there:
/// the tiny `sendfile` server sends Wharf's own file. Not with S3.
fn blob_file(dir: &std::path::Path, digest: &str) -> Option<std::path::PathBuf> {
    let digest: wharf::oci::Digest = digest.parse().ok()?;
    let key = wharf::storage::blobs::Key::Blob(&digest);
    let path = dir.join("blobs").join(key.path().as_ref());
    path.is_file().then_some(path)
}

/// A keep-alive HTTP/1.1 connection written by hand so that the client is
/// never the bottleneck: a body goes out in one `write_all` and a response
/// body is drained through a reused buffer.
struct Conn {
    stream: tokio::net::TcpStream,
    addr: String,
    buf: Vec<u8>,
}

impl Conn {
    async fn open(addr: &str) -> Conn {
        let stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
        stream.set_nodelay(true).expect("nodelay");
        Conn {
            stream,
            addr: addr.to_string(),
            buf: vec![0u8; MIB],
        }
    }

    /// One exchange; returns the status, the `Location` header and the body length.
    async fn exchange(
        &mut self,
        method: &str,
        target: &str,
        headers: &[(&str, String)],
        body: &[u8],
    ) -> (u16, String, usize) {
        let mut head = format!(
            "{method} {target} HTTP/1.1\r\nHost: {}\r\nContent-Length: {}\r\n",
            self.addr,
            body.len()
        );
        for (k, v) in headers {
            head.push_str(&format!("{k}: {v}\r\n"));
        }
        head.push_str("\r\n");
        self.stream
            .write_all(head.as_bytes())
            .await
            .expect("write head");
        self.stream.write_all(body).await.expect("write body");

        let buf = &mut self.buf;
        let mut filled = 0;
        let header_end = loop {
            let n = self.stream.read(&mut buf[filled..]).await.expect("read");
            assert!(n > 0, "connection closed before the response head");
            filled += n;
            if let Some(i) = buf[..filled].windows(4).position(|w| w == b"\r\n\r\n") {
                break i + 4;
            }
        };
        let text = String::from_utf8_lossy(&buf[..header_end]).to_string();
        let status: u16 = text
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .expect("status");
        let header = |name: &str| {
            text.lines().find_map(|l| {
                l.split_once(':')
                    .filter(|(k, _)| k.eq_ignore_ascii_case(name))
                    .map(|(_, v)| v.trim().to_string())
            })
        };
        let location = header("location").unwrap_or_default();
        let length: usize = header("content-length")
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        let mut received = filled - header_end;
        while received < length {
            let want = (length - received).min(buf.len());
            let n = self.stream.read(&mut buf[..want]).await.expect("read body");
            assert!(n > 0, "connection closed mid-body");
            received += n;
        }
        (status, location, received)
    }
}

/// Pushes `data`, whose digest is `d`, in one request.
async fn push_monolithic(conn: &mut Conn, repo: &str, data: &[u8], d: &str) -> Duration {
    let start = Instant::now();
    let (status, _, _) = conn
        .exchange(
            "POST",
            &format!("/v2/{repo}/blobs/uploads/?digest={d}"),
            &[],
            data,
        )
        .await;
    assert_eq!(status, 201);
    start.elapsed()
}

/// Pushes `data`, whose digest is `d`, in PATCHes of `chunk` bytes.
async fn push_chunked(conn: &mut Conn, repo: &str, data: &[u8], d: &str, chunk: usize) -> Duration {
    let start = Instant::now();
    let (status, mut location, _) = conn
        .exchange("POST", &format!("/v2/{repo}/blobs/uploads/"), &[], b"")
        .await;
    assert_eq!(status, 202);
    for (i, piece) in data.chunks(chunk).enumerate() {
        let first = i * chunk;
        let range = format!("{}-{}", first, first + piece.len() - 1);
        let (status, next, _) = conn
            .exchange("PATCH", &location, &[("Content-Range", range)], piece)
            .await;
        assert_eq!(status, 202);
        location = next;
    }
    let (status, _, _) = conn
        .exchange("PUT", &format!("{location}?digest={d}"), &[], b"")
        .await;
    assert_eq!(status, 201);
    start.elapsed()
}

async fn pull(conn: &mut Conn, repo: &str, d: &str) -> (Duration, usize) {
    let start = Instant::now();
    let (status, _, n) = conn
        .exchange("GET", &format!("/v2/{repo}/blobs/{d}"), &[], b"")
        .await;
    assert_eq!(status, 200);
    (start.elapsed(), n)
}

/// A pull of a `len`-byte blob by a blocking client on its own thread, on a
/// new connection; MB/s.
async fn pull_blocking(addr: &str, repo: &str, d: &str, len: usize) -> f64 {
    use std::io::{Read, Write};
    let request =
        format!("GET /v2/{repo}/blobs/{d} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    let addr = addr.to_string();
    tokio::task::spawn_blocking(move || {
        let mut stream = std::net::TcpStream::connect(&addr).expect("connect");
        let mut buf = vec![0u8; MIB];
        let start = Instant::now();
        stream.write_all(request.as_bytes()).expect("write");
        let mut filled = 0;
        let head = loop {
            let n = stream.read(&mut buf[filled..]).expect("read");
            assert!(n > 0, "connection closed before the response head");
            filled += n;
            if let Some(i) = buf[..filled].windows(4).position(|w| w == b"\r\n\r\n") {
                break i + 4;
            }
        };
        assert!(buf.starts_with(b"HTTP/1.1 200"), "pull failed");
        let mut received = filled - head;
        while received < len {
            let n = stream.read(&mut buf).expect("read body");
            assert!(n > 0, "connection closed mid-body");
            received += n;
        }
        assert_eq!(received, len, "a body longer than the blob");
        mb_per_s(received, start.elapsed())
    })
    .await
    .expect("blocking pull")
}

fn wrk(url: &str, seconds: u64) -> Option<f64> {
    let out = Command::new("wrk")
        .args([
            "-t2",
            "-c64",
            &format!("-d{seconds}s"),
            "-H",
            "Accept: application/vnd.oci.image.manifest.v1+json",
            url,
        ])
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    text.lines()
        .find_map(|l| l.strip_prefix("Requests/sec:"))
        .and_then(|v| v.trim().parse().ok())
}

fn env_number<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Requests and errors of the soak's workers, with latencies (µs) since the last report.
#[derive(Default)]
struct SoakTally {
    requests: u64,
    errors: u64,
    latencies: Vec<u32>,
}

/// One soak worker: push and pull until `until`, as `tools/load-mix.py` does.
async fn soak_worker(
    addr: String,
    worker: usize,
    blob_kib: usize,
    until: Instant,
    tally: std::sync::Arc<std::sync::Mutex<SoakTally>>,
) {
    let mut conn = Conn::open(&addr).await;
    let repo = format!("soak/w{}", worker % 8);
    let config = format!("{{\"worker\":{worker}}}").into_bytes();
    let config_digest = digest(&config);
    let manifest_type = [(
        "Content-Type",
        "application/vnd.oci.image.manifest.v1+json".to_string(),
    )];
    let mut round = 0usize;
    while Instant::now() < until {
        round += 1;
        let layer = random_blob(blob_kib * 1024);
        let layer_digest = digest(&layer);
        let mut done: Vec<(u32, bool)> = Vec::new();
        let mut timed = async |conn: &mut Conn,
                               method: &str,
                               target: &str,
                               headers: &[(&str, String)],
                               body: &[u8],
                               ok: u16| {
            let start = Instant::now();
            let (status, location, _) = conn.exchange(method, target, headers, body).await;
            let micros = u32::try_from(start.elapsed().as_micros()).unwrap_or(u32::MAX);
            done.push((micros, status == ok));
            location
        };
        for (bytes, d) in [(&config, &config_digest), (&layer, &layer_digest)] {
            let location = timed(
                &mut conn,
                "POST",
                &format!("/v2/{repo}/blobs/uploads/"),
                &[],
                b"",
                202,
            )
            .await;
            // The Location may be absolute; the request target is its path.
            let location = match location.strip_prefix("http://") {
                Some(rest) => rest.find('/').map_or("/", |i| &rest[i..]).to_string(),
                None => location,
            };
            let separator = if location.contains('?') { '&' } else { '?' };
            timed(
                &mut conn,
                "PUT",
                &format!("{location}{separator}digest={d}"),
                &[],
                bytes,
                201,
            )
            .await;
        }
        let manifest = serde_json::json!({
            "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config_digest, "size": config.len()},
            "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": layer_digest, "size": layer.len()}],
        });
        let body = serde_json::to_vec(&manifest).expect("json");
        let target = format!("/v2/{repo}/manifests/t{worker}-{}", round % 5);
        timed(&mut conn, "PUT", &target, &manifest_type, &body, 201).await;
        let accept = [(
            "Accept",
            "application/vnd.oci.image.manifest.v1+json".to_string(),
        )];
        timed(&mut conn, "GET", &target, &accept, b"", 200).await;
        let blob = format!("/v2/{repo}/blobs/{layer_digest}");
        timed(&mut conn, "GET", &blob, &[], b"", 200).await;
        let mut tally = tally.lock().expect("tally");
        for (micros, ok) in done {
            tally.requests += 1;
            tally.errors += u64::from(!ok);
            tally.latencies.push(micros);
        }
    }
}

/// The soak: RSS over time under the mixed load.
async fn soak(seconds: u64) {
    let workers: usize = env_number("BENCH_SOAK_WORKERS", 32);
    let blob_kib: usize = env_number("BENCH_SOAK_BLOB_KIB", 256);
    let server = Server::start();
    let addr = server.base.trim_start_matches("http://").to_string();
    println!(
        "wharf soak: {workers} workers, {blob_kib} KiB layers, {seconds} s, {}; RSS at start {:.1} MiB",
        server.base,
        server.rss_mib()
    );
    let start = Instant::now();
    let until = start + Duration::from_secs(seconds);
    let tally = std::sync::Arc::new(std::sync::Mutex::new(SoakTally::default()));
    let handles: Vec<_> = (0..workers)
        .map(|w| tokio::spawn(soak_worker(addr.clone(), w, blob_kib, until, tally.clone())))
        .collect();
    let mut samples: Vec<(u64, f64)> = Vec::new();
    let (mut requests, mut errors) = (0u64, 0u64);
    while Instant::now() < until {
        tokio::time::sleep(Duration::from_secs(10)).await;
        let at = start.elapsed().as_secs();
        let rss = server.rss_mib();
        let (window, mut latencies) = {
            let mut t = tally.lock().expect("tally");
            let window = (t.requests - requests, t.errors - errors);
            requests = t.requests;
            errors = t.errors;
            (window, std::mem::take(&mut t.latencies))
        };
        latencies.sort_unstable();
        let percentile = |q: f64| {
            latencies
                .get(((latencies.len() as f64 * q) as usize).min(latencies.len().saturating_sub(1)))
                .map_or(0.0, |us| f64::from(*us) / 1000.0)
        };
        println!(
            "{at:>4} s  RSS {rss:6.1} MiB  {:6.0} requests/s  p50 {:5.1} ms  p99 {:6.1} ms  errors {}",
            window.0 as f64 / 10.0,
            percentile(0.5),
            percentile(0.99),
            window.1
        );
        samples.push((at, rss));
    }
    for h in handles {
        h.await.expect("worker");
    }
    let last_minute: Vec<f64> = samples
        .iter()
        .filter(|(at, _)| *at + 60 > seconds)
        .map(|(_, rss)| *rss)
        .collect();
    let steady = last_minute.iter().sum::<f64>() / last_minute.len().max(1) as f64;
    println!(
        "soak: {requests} requests, {errors} errors, {:.0} requests/s; steady-state RSS {steady:.1} MiB (mean of the last minute); peak {:.1} MiB",
        requests as f64 / start.elapsed().as_secs_f64(),
        server.peak_rss_mib()
    );
    if let (Some((_, at_two)), Some((_, end))) =
        (samples.iter().find(|(at, _)| *at >= 120), samples.last())
    {
        println!(
            "growth from minute two to the end: {:+.1} MiB",
            end - at_two
        );
    }
}

#[tokio::main]
async fn main() {
    // `cargo bench` passes `--bench`; any other argument is a filter we do not use.
    if let Some(seconds) = std::env::var("BENCH_SOAK_SECONDS")
        .ok()
        .and_then(|v| v.parse().ok())
    {
        return soak(seconds).await;
    }
    let blob_mib: usize = std::env::var("BENCH_BLOB_MIB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1024);
    let wrk_seconds: u64 = std::env::var("BENCH_WRK_SECONDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10);
    let server = Server::start();
    let base = server.base.clone();
    let addr = base.trim_start_matches("http://").to_string();

    println!(
        "wharf benchmark: {blob_mib} MiB blob over loopback, {base}, data in {}",
        server._dir.path().display()
    );
    let sha = openssl_sha256();
    match sha {
        Some(rate) => println!("openssl sha256 (1 core, 16 KiB blocks): {rate:.0} MB/s"),
        None => println!("openssl sha256: unavailable (install openssl)"),
    }
    let concurrent = random_blob(CONCURRENT_MIB * MIB);
    let limits = limits::measure(
        server._dir.path(),
        &random_blob(blob_mib * MIB),
        &concurrent,
    )
    .await;
    println!("limits of this machine:");
    println!(
        "  loopback copy, sendfile server: {:.0} MB/s",
        limits.sendfile
    );
    println!(
        "  loopback copy, read+write server (1 MiB): {:.0} MB/s",
        limits.copy
    );
    println!(
        "  8 concurrent loopback copies of {CONCURRENT_MIB} MiB, sendfile server: {:.0} MB/s aggregate",
        limits.sendfile_8
    );
    println!("  sha256, sha2 crate, 1 core: {:.0} MB/s", limits.sha256);
    println!(
        "  file write, 1 MiB writes into a new file: {:.0} MB/s",
        limits.file_write
    );
    println!(
        "  loopback receive into a file (1 MiB reads and writes): {:.0} MB/s",
        limits.receive_to_file
    );
    println!(
        "  loopback receive into a file, hashed on other threads (a push without HTTP): {:.0} MB/s",
        limits.receive_hashed
    );
    println!(
        "  CPU of receiving into a file: {:.2} core-s/GB (the receiver alone {:.2}); of hashing: {:.2} core-s/GB",
        limits.receive_cpu * 1000.0,
        limits.receiver_cpu * 1000.0,
        1000.0 / limits.sha256
    );
    println!(
        "  least server CPU of a push (receiver + hashing): {:.2} core-s/GB",
        (limits.receiver_cpu + 1.0 / limits.sha256) * 1000.0
    );
    println!(
        "  all {} cores on receiving and hashing: {:.0} MB/s; loopback, disk and hashing together: {:.0} MB/s",
        limits.cores,
        limits.cpu_bound_push,
        limits.combined_push()
    );
    println!(
        "  the push rounds run the push without HTTP in its {:?} layout; each mode's goal is the lower of 0.7× sha256 and 0.9× that program's best in the mode's rounds",
        limits.push_layout
    );
    let dir = server._dir.path();

    let mut last = String::new();
    for (name, chunk) in [
        ("push monolithic", 0),
        ("push chunked 8 MiB", 8 * MIB),
        ("push chunked 64 MiB", 64 * MIB),
    ] {
        // Fresh random content per mode, stored by a first push that is not
        // timed; every timed push repeats it from a fresh copy on a fresh
        // connection and does the full work (hashed, written, then dropped as
        // already stored), and the data folder holds one blob per mode, not
        // many, so memory pressure on a tmpfs does not slow the later modes.
        //
        // Each round also runs the push without HTTP on the same content,
        // whose file is removed as a repeat's staged copy is. After the first
        // push one untimed run of it frees its file, so every timed run starts
        // soon after a 1 GiB file was freed, and each run is followed by the
        // same wait for the server to go idle: on this VM, pages freed a
        // moment ago take writes several times faster than pages the guest
        // has since reported free to the host (README, "Benchmark").
        let content = random_blob(blob_mib * MIB);
        let d = digest(&content);
        let push = || {
            let (content, d) = (&content, &d);
            let (addr, server) = (&addr, &server);
            async move {
                // A new allocation each time: resending a reused 1 GiB buffer
                // gets slower and slower on this VM (a client-side kernel effect).
                let data = content.clone();
                let mut conn = Conn::open(addr).await;
                let cpu = server.cpu_seconds();
                let elapsed = if chunk == 0 {
                    push_monolithic(&mut conn, "bench/blob", &data, d).await
                } else {
                    push_chunked(&mut conn, "bench/blob", &data, d, chunk).await
                };
                let cpu = (server.cpu_seconds() - cpu) / (data.len() as f64 / 1e9);
                // A repeat's staged copy is freed after the response; let that
                // finish before the next run starts.
                server.settle().await;
                (mb_per_s(data.len(), elapsed), cpu)
            }
        };
        let tiny = || async {
            let rate = limits::push_without_http(dir, &content, limits.push_layout).await;
            server.settle().await;
            rate
        };
        push().await;
        tiny().await;
        let mut rounds = Rounds::default();
        let mut best_cpu = f64::INFINITY;
        for round in 0..ROUNDS {
            let ((wharf, cpu), limit) = alternate(round, push(), tiny()).await;
            rounds.add(wharf, limit);
            best_cpu = best_cpu.min(cpu);
        }
        let (goal, basis) = limits.push_goal(rounds.limit());
        println!(
            "{name}: {:.0} MB/s, push without HTTP {:.0} MB/s (best of {ROUNDS} alternating rounds each); {:.2}× the push goal of {goal:.0} MB/s ({basis}; {}); {:.2}× sha256; server CPU {best_cpu:.2} core-s/GB",
            rounds.wharf(),
            rounds.limit(),
            rounds.wharf() / goal,
            rounds.spread(|limit| limits.push_goal(limit).0),
            rounds.wharf() / limits.sha256,
        );
        last = d;
    }

    // Opened now: the server closes connections idle for two minutes.
    let mut conn = Conn::open(&addr).await;
    // The first full read of a fresh blob is hashed; once it matched, reads
    // are sent from the file (README, "Zero-copy pulls"). A match counts only
    // for a file unchanged for 100 ms.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let (elapsed, n) = pull(&mut conn, "bench/blob", &last).await;
    println!(
        "first pull (hashed): {:.0} MB/s ({:.2}× the read+write limit)",
        mb_per_s(n, elapsed),
        mb_per_s(n, elapsed) / limits.copy
    );
    // The sendfile server sends Wharf's own file, pages and all; with S3
    // there is none, and the figure of the first measurements stands in.
    let file = blob_file(dir, &last);
    // Pulls by the tokio client, then by a blocking one: how a client waits
    // for data changes how the kernel's work is spread over the two cores
    // (README, Benchmark).
    for (name, blocking) in [("pull", false), ("pull, blocking client", true)] {
        let mut rounds = Rounds::default();
        for round in 0..PULL_ROUNDS {
            let wharf = async {
                if blocking {
                    pull_blocking(&addr, "bench/blob", &last, blob_mib * MIB).await
                } else {
                    let (elapsed, n) = pull(&mut conn, "bench/blob", &last).await;
                    assert_eq!(n, blob_mib * MIB);
                    mb_per_s(n, elapsed)
                }
            };
            let limit = async {
                match &file {
                    Some(file) if blocking => limits::pull_sendfile_blocking(file).await,
                    Some(file) => limits::pull_sendfile(file).await,
                    None => limits.sendfile,
                }
            };
            let (wharf, limit) = alternate(round, wharf, limit).await;
            rounds.add(wharf, limit);
        }
        println!(
            "{name}: {:.0} MB/s, sendfile server {:.0} MB/s (best of {PULL_ROUNDS} alternating rounds each); {:.2}× the sendfile limit ({})",
            rounds.wharf(),
            rounds.limit(),
            rounds.wharf() / rounds.limit(),
            rounds.spread(|limit| limit),
        );
    }

    // A fresh connection: this one sat idle through the blocking rounds.
    let mut conn = Conn::open(&addr).await;
    let concurrent_digest = digest(&concurrent);
    let target = format!("/v2/bench/many/blobs/uploads/?digest={concurrent_digest}");
    assert_eq!(
        conn.exchange("POST", &target, &[], &concurrent).await.0,
        201
    );
    tokio::time::sleep(Duration::from_millis(200)).await;
    pull(&mut conn, "bench/many", &concurrent_digest).await;
    let file = blob_file(dir, &concurrent_digest);
    let mut rounds = Rounds::default();
    for round in 0..CONCURRENT_ROUNDS {
        let wharf = async {
            let start = Instant::now();
            let pulls: Vec<_> = (0..8)
                .map(|_| {
                    let (addr, d) = (addr.clone(), concurrent_digest.clone());
                    tokio::spawn(async move {
                        let mut conn = Conn::open(&addr).await;
                        pull(&mut conn, "bench/many", &d).await.1
                    })
                })
                .collect();
            let mut total = 0;
            for p in pulls {
                total += p.await.expect("pull");
            }
            assert_eq!(total, 8 * concurrent.len());
            mb_per_s(total, start.elapsed())
        };
        let limit = async {
            match &file {
                Some(file) => limits::pull_sendfile_8(file).await,
                None => limits.sendfile_8,
            }
        };
        let (wharf, limit) = alternate(round, wharf, limit).await;
        rounds.add(wharf, limit);
    }
    println!(
        "8 concurrent pulls of {CONCURRENT_MIB} MiB: {:.0} MB/s aggregate, sendfile server {:.0} MB/s (best of {CONCURRENT_ROUNDS} alternating rounds each); {:.2}× the 8-stream sendfile limit ({}); server RSS now {:.1} MiB",
        rounds.wharf(),
        rounds.limit(),
        rounds.wharf() / rounds.limit(),
        rounds.spread(|limit| limit),
        server.rss_mib()
    );

    // A small image for the manifest benchmark.
    let config = br#"{"architecture":"amd64","os":"linux"}"#;
    for blob in [&config[..], b"layer"] {
        let target = format!("/v2/bench/app/blobs/uploads/?digest={}", digest(blob));
        assert_eq!(conn.exchange("POST", &target, &[], blob).await.0, 201);
    }
    let manifest = serde_json::json!({
        "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": digest(config), "size": config.len()},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": digest(b"layer"), "size": 5}],
    });
    let content_type = [(
        "Content-Type",
        "application/vnd.oci.image.manifest.v1+json".to_string(),
    )];
    let body = serde_json::to_vec(&manifest).expect("json");
    assert_eq!(
        conn.exchange(
            "PUT",
            "/v2/bench/app/manifests/latest",
            &content_type,
            &body
        )
        .await
        .0,
        201
    );
    // Latency of small blob GETs one after another on one connection: what a
    // client pulling many small layers sees (a Nagle stall would show as ~40 ms).
    let small = format!("/v2/bench/app/blobs/{}", digest(b"layer"));
    let start = Instant::now();
    const SEQUENTIAL: u32 = 200;
    for _ in 0..SEQUENTIAL {
        assert_eq!(conn.exchange("GET", &small, &[], b"").await.0, 200);
    }
    println!(
        "small blob GET, sequential on one connection: {:.2} ms/request",
        start.elapsed().as_secs_f64() * 1000.0 / f64::from(SEQUENTIAL)
    );
    match wrk(
        &format!("{base}/v2/bench/app/manifests/latest"),
        wrk_seconds,
    ) {
        Some(rps) => {
            println!("manifest GET by tag (wrk -t2 -c64 -d{wrk_seconds}s): {rps:.0} requests/s")
        }
        None => println!("manifest GET: wrk unavailable (apt-get install wrk)"),
    }
    println!("server peak RSS: {:.1} MiB", server.peak_rss_mib());
}
