//! Entry point: wires configuration, clients and (in later releases) controllers.

use fsx_backup_operator::telemetry::{self, LogFormat};

#[tokio::main]
async fn main() -> std::process::ExitCode {
    telemetry::init(LogFormat::Text);
    if std::env::args().nth(1).as_deref() == Some("check") {
        check_cluster().await
    } else {
        eprintln!(
            "usage: fsx-backup-operator check   (connect to the cluster and print its version)"
        );
        std::process::ExitCode::from(2)
    }
}

/// Connects with the standard kubeconfig/in-cluster chain and prints the server version.
async fn check_cluster() -> std::process::ExitCode {
    let result = async {
        let client = kube::Client::try_default().await?;
        client.apiserver_version().await
    }
    .await;
    match result {
        Ok(info) => {
            println!("connected: Kubernetes {}", info.git_version);
            std::process::ExitCode::SUCCESS
        }
        Err(err) => {
            tracing::error!(error = %err, "cannot reach the Kubernetes API");
            std::process::ExitCode::FAILURE
        }
    }
}
