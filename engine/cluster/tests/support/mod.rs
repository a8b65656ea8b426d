//! A real 3-node NATS JetStream cluster on loopback for the tests: Debian's
//! `nats-server` (`apt-get install -y nats-server`), each node with its own store in a
//! temporary folder, its own client and route ports on 127.0.0.1. Nodes can be killed
//! (SIGKILL) and restarted on the same ports and store.

use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use hakken_cluster::jetstream::{ClusterConfig, JetStream};

pub(crate) struct NatsCluster {
    dir: tempfile::TempDir,
    client_ports: Vec<u16>,
    nodes: Vec<Option<Child>>,
}

fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("a free loopback port");
    listener.local_addr().expect("its address").port()
}

impl NatsCluster {
    /// Starts `size` servers routed to each other and waits for their client ports.
    pub(crate) fn start(size: usize) -> NatsCluster {
        let dir = tempfile::tempdir().expect("a temporary folder");
        let client_ports: Vec<u16> = (0..size).map(|_| free_port()).collect();
        let route_ports: Vec<u16> = (0..size).map(|_| free_port()).collect();
        for index in 0..size {
            let routes: Vec<String> =
                route_ports.iter().map(|port| format!("\"nats-route://127.0.0.1:{port}\"")).collect();
            let store = dir.path().join(format!("n{index}"));
            let config = format!(
                "server_name: n{index}\nhost: 127.0.0.1\nport: {client}\n\
                 jetstream {{ store_dir: \"{store}\", max_memory_store: 64MB, max_file_store: 1GB }}\n\
                 cluster {{ name: hakken-test, listen: \"127.0.0.1:{route}\", routes: [{routes}] }}\n",
                client = client_ports[index],
                route = route_ports[index],
                store = store.display(),
                routes = routes.join(", "),
            );
            std::fs::write(dir.path().join(format!("n{index}.conf")), config).expect("writing a server's config");
        }
        let mut cluster = NatsCluster { dir, client_ports, nodes: (0..size).map(|_| None).collect() };
        for index in 0..size {
            cluster.restart(index);
        }
        cluster
    }

    fn config_path(&self, index: usize) -> PathBuf {
        self.dir.path().join(format!("n{index}.conf"))
    }

    /// Starts server `index` again (same ports, same store) and waits for its port.
    pub(crate) fn restart(&mut self, index: usize) {
        assert!(self.nodes[index].is_none(), "server {index} is running");
        let log = std::fs::File::create(self.dir.path().join(format!("n{index}.log"))).expect("a log file");
        let child = Command::new("nats-server")
            .arg("--config")
            .arg(self.config_path(index))
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("nats-server runs (apt-get install -y nats-server; .ci/run installs it)");
        self.nodes[index] = Some(child);
        // 30 s: on a 2-core machine running the whole suite, a start can take seconds.
        let deadline = Instant::now() + Duration::from_secs(30);
        while TcpStream::connect(("127.0.0.1", self.client_ports[index])).is_err() {
            assert!(Instant::now() < deadline, "nats-server n{index} did not listen within 30 s");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// SIGKILL of server `index`.
    pub(crate) fn kill(&mut self, index: usize) {
        if let Some(mut child) = self.nodes[index].take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// The index of server `name` (`n0`, `n1`, ...).
    pub(crate) fn index_of(&self, name: &str) -> usize {
        name.trim_start_matches('n').parse().expect("a server name of this cluster")
    }

    pub(crate) fn urls(&self) -> Vec<String> {
        self.client_ports.iter().map(|port| format!("nats://127.0.0.1:{port}")).collect()
    }

    pub(crate) fn config(&self, node: &str) -> ClusterConfig {
        ClusterConfig {
            node: node.to_string(),
            urls: self.urls(),
            replicas: self.nodes.len(),
            request_timeout: Duration::from_secs(2),
        }
    }

    /// A node's connection, once the cluster has a JetStream leader to create the
    /// bucket and the stream (a few seconds after the servers start).
    pub(crate) async fn connect(&self, node: &str) -> JetStream {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            match JetStream::connect(&self.config(node)).await {
                Ok(jetstream) => return jetstream,
                Err(error) if Instant::now() < deadline => {
                    let _ = error;
                    tokio::time::sleep(Duration::from_millis(250)).await;
                }
                Err(error) => panic!("JetStream was not ready within 30 s: {error}"),
            }
        }
    }
}

impl Drop for NatsCluster {
    fn drop(&mut self) {
        for index in 0..self.nodes.len() {
            self.kill(index);
        }
    }
}
