//! Every manifest in `examples/` is accepted by the real apiserver.

use crate::support::operator::{install_crds, kubectl};

#[tokio::test]
async fn every_example_is_accepted() {
    crate::support::with_namespace("examples", |_client, namespace| async move {
        install_crds();
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/examples");
        let output = kubectl(&["apply", "--dry-run=server", "-n", &namespace, "-f", dir]);
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert!(
            output.status.success(),
            "{stdout}\n{}",
            String::from_utf8_lossy(&output.stderr)
        );
        let files = std::fs::read_dir(dir).expect("examples/").count();
        assert_eq!(
            stdout.lines().count(),
            files,
            "one object per example file: {stdout}"
        );
    })
    .await;
}
