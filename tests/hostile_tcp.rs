//! Hostile clients over real TCP, against the gateway served by hyper on
//! 127.0.0.1: 100 connections trickling bodies one byte at a time to a SigV4
//! method (half with an unknown access key id, half with a known one), and
//! 20 announcing a body over the limit. Each is answered or closed within
//! the body timeout, and the process grows by less than 20 MB.

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tollgate::clock::{Clock, SystemClock};
use tollgate::{Config, Gateway};

const CONFIG: &str = r#"
routes: { /signed: [POST] }
stages:
  prod:
    settings: { authorization: sigv4 }
credentials:
  - { access_key_id: AKIDEXAMPLE, secret_access_key: "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY" }
sigv4: { region: us-east-1, max_body: 65536 }
limits: { body_timeout_ms: 1000 }
"#;

/// Resident memory of this process, from /proc (Linux), in bytes.
fn rss() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: u64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .unwrap_or(0);
    pages * 4096
}

/// Opens a connection, sends the head of a signed POST announcing
/// `length` bytes, trickles one byte every 20 ms, and returns the status
/// the server answered with (0 if it closed without one).
async fn trickle(addr: std::net::SocketAddr, access_key_id: &str, length: u64) -> u16 {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let secs = i64::try_from(SystemClock.unix_nanos() / 1_000_000_000).unwrap();
    let now = time::OffsetDateTime::from_unix_timestamp(secs).unwrap();
    let date = format!(
        "{:04}{:02}{:02}T{:02}{:02}{:02}Z",
        now.year(),
        u8::from(now.month()),
        now.day(),
        now.hour(),
        now.minute(),
        now.second()
    );
    let head = format!(
        "POST /prod/signed HTTP/1.1\r\nhost: api.example.com\r\nx-amz-date: {date}\r\n\
         authorization: AWS4-HMAC-SHA256 Credential={access_key_id}/{}/us-east-1/execute-api/aws4_request, \
         SignedHeaders=host;x-amz-date, Signature={}\r\ncontent-length: {length}\r\n\r\n",
        &date[..8],
        "0".repeat(64)
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    let (mut read, mut write) = stream.into_split();
    let writer = tokio::spawn(async move {
        for _ in 0..length.min(1000) {
            if write.write_all(b"x").await.is_err() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    });
    let mut buf = [0u8; 64];
    let mut got = Vec::new();
    while got.len() < 12 {
        match read.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => got.extend_from_slice(&buf[..n]),
        }
    }
    writer.abort();
    std::str::from_utf8(got.get(9..12).unwrap_or_default())
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trickling_clients_are_answered_in_time_and_hold_little_memory() {
    let gw = Gateway::builder(Config::from_yaml_str(CONFIG).unwrap())
        .clock(SystemClock)
        .build()
        .unwrap();
    let addr = support::serve_tcp(gw.service(support::ok())).await;
    // One request first, so that lazily built state is in the baseline.
    assert_eq!(trickle(addr, "AKIDBOGUS", 1).await, 403);
    let baseline = rss();
    let peak = Arc::new(AtomicU64::new(baseline));
    let sampler = {
        let peak = peak.clone();
        tokio::spawn(async move {
            loop {
                peak.fetch_max(rss(), Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
    };

    let mut clients = Vec::new();
    for i in 0..120 {
        let (akid, length, want) = match i % 6 {
            // Unknown access key id: refused on its headers.
            0..=2 => ("AKIDBOGUS", 1000, 403),
            // Known: the signature needs the body, which never comes whole.
            3 | 4 => ("AKIDEXAMPLE", 1000, 408),
            // Over max_body: refused on its announced length.
            _ => ("AKIDEXAMPLE", 20_000_000, 413),
        };
        clients.push(tokio::spawn(async move {
            // Within the body timeout (1 s), with room for a loaded machine.
            let got = tokio::time::timeout(Duration::from_secs(6), trickle(addr, akid, length))
                .await
                .expect("answered or closed within the body timeout");
            (got, want)
        }));
    }
    for c in clients {
        let (got, want) = c.await.unwrap();
        assert_eq!(got, want);
    }
    sampler.abort();
    let grown = peak.load(Ordering::Relaxed).saturating_sub(baseline);
    eprintln!("120 hostile connections: resident memory grew by {grown} bytes");
    assert!(
        grown < 20 << 20,
        "the process grew by {grown} bytes for 120 hostile connections"
    );
}
