//! A redis-server of a test's (or bench's) own: on a free loopback port,
//! bound to 127.0.0.1 only, with no persistence (`--save ''`, no AOF),
//! waited for at most 2 s, and killed when dropped.

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// `child` once it accepts connections on `port` (of 127.0.0.1): 200 tries
/// 10 ms apart, then it is killed and the test fails.
fn accepting(mut child: Child, port: u16) -> Child {
    for _ in 0..200 {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return child;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let _ = child.kill();
    let _ = child.wait();
    panic!("redis-server did not start on port {port}");
}

/// A running redis-server, killed (and reaped) on drop.
pub(crate) struct Server {
    child: Child,
    /// The loopback port it listens on.
    pub(crate) port: u16,
}

impl Server {
    /// Starts one on a port the OS just handed out as free.
    pub(crate) fn start() -> Self {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        Self::on(port)
    }

    /// Starts one on `port` (of 127.0.0.1), and waits until it accepts
    /// connections: 200 tries 10 ms apart, then it is killed and the test
    /// fails.
    pub(crate) fn on(port: u16) -> Self {
        let child = Command::new("redis-server")
            .args([
                "--port",
                &port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server is installed (.ci/run installs it with apt-get)");
        Self {
            child: accepting(child, port),
            port,
        }
    }

    /// `redis://127.0.0.1:<port>`.
    pub(crate) fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// The server's process id (to send it signals).
    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Kills the server and waits for it to exit (again on drop: harmless).
    pub(crate) fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A Redis Cluster of `masters` masters (no replicas) on free loopback
/// ports, each node with its own directory for its `nodes.conf` (so a
/// node restarted by [`restart`](Self::restart) rejoins), a 1 s node
/// timeout, and no persistence. Created with `redis-cli --cluster create`
/// (slots split evenly, in port order) and waited for until every node
/// says `cluster_state:ok`. Killed when dropped.
pub(crate) struct Cluster {
    nodes: Vec<Option<Child>>,
    /// The nodes' ports, in slot order: node 0 holds the first third.
    pub(crate) ports: Vec<u16>,
    dir: std::path::PathBuf,
}

impl Cluster {
    pub(crate) fn start(masters: usize) -> Self {
        let ports: Vec<u16> = (0..masters)
            .map(|_| {
                TcpListener::bind("127.0.0.1:0")
                    .unwrap()
                    .local_addr()
                    .unwrap()
                    .port()
            })
            .collect();
        let dir = std::env::temp_dir().join(format!(
            "tollgate-cluster-{}-{}",
            std::process::id(),
            ports[0]
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let mut cluster = Self {
            nodes: Vec::new(),
            ports,
            dir,
        };
        for i in 0..masters {
            let child = cluster.spawn(i);
            cluster.nodes.push(Some(child));
        }
        let mut create = Command::new("redis-cli");
        create.arg("--cluster").arg("create");
        for p in &cluster.ports {
            create.arg(format!("127.0.0.1:{p}"));
        }
        let out = create
            .args(["--cluster-replicas", "0", "--cluster-yes"])
            .output()
            .expect("redis-cli is installed (with redis-server)");
        assert!(
            out.status.success(),
            "redis-cli --cluster create: {}",
            String::from_utf8_lossy(&out.stdout)
        );
        cluster.wait_ok();
        cluster
    }

    /// Starts node `i` (again) in its directory and waits for its port.
    fn spawn(&self, i: usize) -> Child {
        let port = self.ports[i];
        let dir = self.dir.join(port.to_string());
        std::fs::create_dir_all(&dir).unwrap();
        let child = Command::new("redis-server")
            .args([
                "--port",
                &port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--cluster-enabled",
                "yes",
                "--cluster-config-file",
                "nodes.conf",
                "--cluster-node-timeout",
                "1000",
            ])
            .current_dir(&dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server is installed (.ci/run installs it with apt-get)");
        accepting(child, port)
    }

    /// `redis-cli -p PORT ARGS...`'s output.
    pub(crate) fn cli(&self, i: usize, args: &[&str]) -> String {
        let out = Command::new("redis-cli")
            .args(["-p", &self.ports[i].to_string()])
            .args(args)
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Waits (up to 20 s) until every running node says `cluster_state:ok`.
    pub(crate) fn wait_ok(&self) {
        for _ in 0..400 {
            let ok = (0..self.ports.len())
                .filter(|i| self.nodes[*i].is_some())
                .all(|i| {
                    self.cli(i, &["cluster", "info"])
                        .contains("cluster_state:ok")
                });
            if ok {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("the cluster did not reach cluster_state:ok");
    }

    /// Every node's `redis://` URL.
    pub(crate) fn urls(&self) -> Vec<String> {
        self.ports
            .iter()
            .map(|p| format!("redis://127.0.0.1:{p}"))
            .collect()
    }

    /// Keys held by node `i` (`DBSIZE`).
    pub(crate) fn keys_on(&self, i: usize) -> u64 {
        self.cli(i, &["dbsize"]).trim().parse().unwrap_or(0)
    }

    /// Node `i`'s process id, while it runs.
    pub(crate) fn pid(&self, i: usize) -> u32 {
        self.nodes[i].as_ref().expect("the node runs").id()
    }

    /// Kills node `i` (SIGKILL) and reaps it.
    pub(crate) fn kill(&mut self, i: usize) {
        if let Some(mut c) = self.nodes[i].take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Starts node `i` again after [`kill`](Self::kill): it rejoins with its
    /// slots (empty: there is no persistence).
    pub(crate) fn restart(&mut self, i: usize) {
        if self.nodes[i].is_none() {
            let child = self.spawn(i);
            self.nodes[i] = Some(child);
        }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for i in 0..self.nodes.len() {
            self.kill(i);
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
