//! A leader whose apiserver link hangs (a proxy that keeps the connections
//! open and stops passing bytes) must stop acting before another replica can
//! take the Lease over: never two replicas acting at once.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crate::support::operator::{
    Operator, OperatorConfig, TestClock, eventually, install_crds, test_dir,
};
use crate::support::world::WAIT;
use fsx_emulator::Emulator;
use jiff::{SignedDuration, Timestamp};
use k8s_openapi::api::coordination::v1::Lease;
use kube::Api;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const LEASE: &str = "fsx-backup-operator";

/// A TCP proxy to `upstream` that can stall: while `stalled`, it holds every
/// byte in both directions and keeps the connections open.
async fn stallable_proxy(upstream: String, stalled: Arc<AtomicBool>) -> u16 {
    let listener = TcpListener::bind(("127.0.0.1", 0)).await.expect("bind");
    let port = listener.local_addr().expect("addr").port();
    tokio::spawn(async move {
        while let Ok((client, _)) = listener.accept().await {
            let Ok(server) = TcpStream::connect(&upstream).await else {
                continue;
            };
            let (client_read, client_write) = client.into_split();
            let (server_read, server_write) = server.into_split();
            tokio::spawn(pipe(client_read, server_write, stalled.clone()));
            tokio::spawn(pipe(server_read, client_write, stalled.clone()));
        }
    });
    port
}

async fn pipe(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    stalled: Arc<AtomicBool>,
) {
    let mut buffer = vec![0; 64 * 1024];
    loop {
        let Ok(n) = from.read(&mut buffer).await else {
            return;
        };
        if n == 0 {
            return;
        }
        while stalled.load(Ordering::Relaxed) {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        if to.write_all(&buffer[..n]).await.is_err() {
            return;
        }
    }
}

/// `kubeconfig` with its server moved to `127.0.0.1:port`; returns the new file.
fn proxied_kubeconfig(
    kubeconfig: &std::path::Path,
    port: u16,
    dir: &std::path::Path,
) -> (std::path::PathBuf, String) {
    let text = std::fs::read_to_string(kubeconfig).expect("kubeconfig");
    let server = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("server: https://"))
        .expect("server line")
        .to_owned();
    let path = dir.join("proxied-kubeconfig");
    std::fs::write(&path, text.replace(&server, &format!("127.0.0.1:{port}"))).expect("write");
    (path, server)
}

#[tokio::test]
async fn a_leader_with_a_hung_apiserver_link_stops_before_another_takes_over() {
    crate::support::with_namespace("split-brain", |client, namespace| async move {
        install_crds();
        let emulator = Emulator::new();
        let running = emulator.start().await.expect("emulator");
        let dir = test_dir(&namespace);
        let clock = TestClock::new(&dir);
        let stalled = Arc::new(AtomicBool::new(false));
        let kubeconfig = &crate::support::control_plane().kubeconfig;
        let (_, upstream) = proxied_kubeconfig(kubeconfig, 0, &dir);
        let port = stallable_proxy(upstream, stalled.clone()).await;
        let (proxied, _) = proxied_kubeconfig(kubeconfig, port, &dir);
        let proxied = proxied.to_string_lossy().into_owned();

        let args: Vec<String> = ["--leader-election", "true", "--leader-election-namespace", &namespace, "--lease-duration", "3s"]
            .iter()
            .map(|a| (*a).to_owned())
            .collect();
        let config = OperatorConfig {
            namespace: &namespace,
            fsx_endpoint: &running.endpoint,
            clock: &clock,
            extra_args: &args,
        };
        let leases: Api<Lease> = Api::namespaced(client.clone(), &namespace);
        let holder = || async {
            let spec = leases.get_opt(LEASE).await.ok()??.spec?;
            Some((spec.holder_identity?, spec.renew_time?.0, spec.acquire_time?.0))
        };

        // The replica behind the proxy leads first; the other one stands by.
        let mut behind_proxy: Operator =
            config.start_with_env(&[("POD_NAME", "behind-proxy"), ("KUBECONFIG", &proxied)]);
        eventually("the proxied replica leads", WAIT, || async {
            holder().await.filter(|(h, ..)| h == "behind-proxy").map(|_| ())
        })
        .await;
        let mut direct: Operator = config.start_with_env(&[("POD_NAME", "direct")]);
        tokio::time::sleep(Duration::from_secs(2)).await;

        stalled.store(true, Ordering::Relaxed);
        let stalled_at = Instant::now();
        let (_, last_renewal, _) = holder().await.expect("lease");
        let code = eventually("the hung leader exits", WAIT, || {
            let exited = behind_proxy.exited();
            async move { exited }
        })
        .await;
        let exited_at = Timestamp::now();
        let stop_after = stalled_at.elapsed();
        let (new_holder, _, acquired) = eventually("the other replica leads", WAIT, || async {
            holder().await.filter(|(h, ..)| h == "direct")
        })
        .await;
        println!(
            "hung link: old leader exited {stop_after:?} after the stall; new leader acquired {} after the old one exited (lease 3s)",
            acquired.duration_since(exited_at)
        );
        assert_eq!(new_holder, "direct");
        assert_eq!(code.code(), Some(1), "{}", behind_proxy.logs());
        assert!(behind_proxy.logs().contains("lost the leader Lease"), "{}", behind_proxy.logs());
        // Never two acting at once: the old leader was gone before the new one took over,
        // and it stopped within its Lease's validity after the last renewal.
        assert!(acquired > exited_at, "new leader at {acquired}, old one exited at {exited_at}");
        assert!(
            exited_at < last_renewal + SignedDuration::from_secs(3),
            "exited at {exited_at}, the Lease renewed at {last_renewal} was valid for 3s"
        );
        stalled.store(false, Ordering::Relaxed);
        direct.kill();
    })
    .await;
}
