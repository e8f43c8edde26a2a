//! `crds/` is generated from the Rust types; this fails when the committed
//! files drift from what `fsx-backup-operator crd` would write.

use fsx_backup_operator::crd::crd_files;

#[test]
fn committed_crds_match_the_types() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("crds");
    let expected = crd_files();
    let mut committed: Vec<String> = std::fs::read_dir(&dir)
        .expect("crds/ exists")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    committed.sort();
    let mut names: Vec<String> = expected.iter().map(|(n, _)| n.clone()).collect();
    names.sort();
    assert_eq!(
        committed, names,
        "crds/ has other files than the generated ones"
    );
    for (name, yaml) in expected {
        let on_disk = std::fs::read_to_string(dir.join(&name)).expect("read committed CRD");
        assert!(
            on_disk == yaml,
            "crds/{name} is stale: run `cargo run -- crd --out crds` and commit the result"
        );
    }
}
