//! No lost usage at shutdown: the petstore binary (`examples/petstore.rs`,
//! built by `cargo test` with the other examples) is sent N requests and
//! then SIGINT or SIGTERM, and its access log and EMF file are counted
//! against the responses the client received.
//!
//! The binary is run as a user runs it, so the signal handling, the drain
//! of the connections and the reporters' flush are all the real ones.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

/// `target/<profile>/examples/petstore`, next to this test's `deps/`.
fn petstore_bin() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let profile = exe.parent().and_then(|deps| deps.parent()).unwrap();
    let bin = profile.join("examples").join("petstore");
    assert!(
        bin.exists(),
        "{} is missing: `cargo test` builds it; with a filter, run `cargo build --example petstore` first",
        bin.display()
    );
    bin
}

/// A running petstore: its address, its stdout lines as they come, and the
/// EMF file it writes.
struct Petstore {
    child: Child,
    addr: String,
    lines: Arc<Mutex<Vec<String>>>,
    reader: std::thread::JoinHandle<()>,
    emf: PathBuf,
}

impl Petstore {
    fn start(name: &str) -> Self {
        let emf = std::env::temp_dir().join(format!(
            "tollgate-shutdown-{name}-{}.emf",
            std::process::id()
        ));
        let _ = std::fs::remove_file(&emf);
        let mut child = Command::new(petstore_bin())
            .args(["--listen", "127.0.0.1:0", "--emf"])
            .arg(&emf)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let lines = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = std::sync::mpsc::channel();
        let seen = lines.clone();
        let reader = std::thread::spawn(move || {
            let mut tx = Some(tx);
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if let Some(addr) = line.strip_prefix("listening on http://")
                    && let Some(tx) = tx.take()
                {
                    let _ = tx.send(addr.to_owned());
                }
                seen.lock().unwrap().push(line);
            }
        });
        let addr = rx
            .recv_timeout(Duration::from_secs(30))
            .expect("the petstore did not say where it listens");
        Self {
            child,
            addr,
            lines,
            reader,
            emf,
        }
    }

    /// Sends `signal` (`INT`, `TERM`) and waits for the process to exit by
    /// itself; returns its access log lines and the sum of its EMF
    /// `Count`s.
    fn stop(mut self, signal: &str) -> (usize, u64) {
        let pid = self.child.id().to_string();
        let sent = Command::new("kill")
            .args([format!("-{signal}"), pid])
            .status()
            .unwrap();
        assert!(sent.success());
        // It exits by itself; a bounded wait, then fail (and end it).
        let mut status = None;
        for _ in 0..300 {
            if let Some(s) = self.child.try_wait().unwrap() {
                status = Some(s);
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let Some(status) = status else {
            let _ = self.child.kill();
            let _ = self.child.wait();
            panic!("the petstore did not exit within 30 s of SIG{signal}");
        };
        assert!(status.success(), "exit status {status}");
        self.reader.join().unwrap();
        let log = self
            .lines
            .lock()
            .unwrap()
            .iter()
            .filter(|l| l.starts_with("127.0.0.1 - - ["))
            .count();
        let emf = std::fs::read_to_string(&self.emf).unwrap_or_default();
        let _ = std::fs::remove_file(&self.emf);
        let counted = emf
            .lines()
            .map(|l| {
                let v: serde_json::Value = serde_json::from_str(l).unwrap();
                // A group's first line has its counts; the lines after it
                // carry only more latency values (100 a line at most).
                v["Count"].as_u64().unwrap_or(0)
            })
            .sum();
        (log, counted)
    }
}

/// A mix of what clients send: reads, one pet, a missing pet, an unknown
/// route, a missing key, a bad key (the dev stage's limit adds 429s).
const PATHS: [&str; 6] = [
    "/dev/pets",
    "/dev/pets/1",
    "/dev/pets/999999",
    "/dev/nowhere",
    "/prod/pets",
    "/prod/pets?type=dog",
];

/// Sends from `tasks` tasks until `total` requests are answered or `stop` is
/// set; counts the responses received whole.
async fn load(addr: String, tasks: u64, total: u64, stop: Arc<AtomicBool>) -> u64 {
    let client: Client<_, Empty<Bytes>> = Client::builder(TokioExecutor::new()).build_http();
    let answered = Arc::new(AtomicU64::new(0));
    let next = Arc::new(AtomicU64::new(0));
    let mut set = tokio::task::JoinSet::new();
    for _ in 0..tasks {
        let (client, answered, next, stop) =
            (client.clone(), answered.clone(), next.clone(), stop.clone());
        let addr = addr.clone();
        set.spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= total {
                    break;
                }
                let path = PATHS[usize::try_from(i).unwrap() % PATHS.len()];
                let uri = format!("http://{addr}{path}");
                let Ok(res) = client.get(uri.parse().unwrap()).await else {
                    continue;
                };
                if res.into_body().collect().await.is_ok() {
                    answered.fetch_add(1, Ordering::Relaxed);
                }
            }
        });
    }
    while set.join_next().await.is_some() {}
    answered.load(Ordering::Relaxed)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn n_requests_then_sigint_give_n_log_lines_and_n_counted_events() {
    const N: u64 = 5000;
    let petstore = Petstore::start("after");
    let answered = load(petstore.addr.clone(), 16, N, Arc::default()).await;
    assert_eq!(answered, N, "every request is answered before the signal");
    let (log, counted) = petstore.stop("INT");
    assert_eq!(log as u64, N, "access log lines");
    assert_eq!(counted, N, "EMF Count, summed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_signal_during_load_logs_every_completed_response() {
    for signal in ["INT", "TERM"] {
        let petstore = Petstore::start(signal);
        let stop = Arc::new(AtomicBool::new(false));
        let addr = petstore.addr.clone();
        let clients = tokio::spawn(load(addr, 16, u64::MAX, stop.clone()));
        // Let the load run, then signal while it does.
        tokio::time::sleep(Duration::from_millis(700)).await;
        let stopper = tokio::task::spawn_blocking(move || petstore.stop(signal));
        // The clients stop once the server is gone (every send fails).
        tokio::time::sleep(Duration::from_millis(500)).await;
        stop.store(true, Ordering::Relaxed);
        let answered = clients.await.unwrap();
        let (log, counted) = stopper.await.unwrap();
        assert!(answered > 0, "SIG{signal}: the load ran");
        assert_eq!(log as u64, answered, "SIG{signal}: log lines = responses");
        assert_eq!(counted, answered, "SIG{signal}: EMF Count = responses");
    }
}
