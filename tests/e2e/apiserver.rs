//! Proves the local control plane is a real kube-apiserver that kube-rs can use:
//! CRD registration, CRUD, list, watch, server-side-applied status, and
//! optimistic-concurrency conflicts.

use std::time::Duration;

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{ListParams, Patch, PatchParams, PostParams};
use kube::runtime::{WatchStreamExt, conditions, wait::await_condition, watcher};
use kube::{Api, CustomResource, CustomResourceExt, ResourceExt};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::json;

/// A small CRD used only to exercise the apiserver.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, JsonSchema)]
#[kube(
    group = "probe.fsxbackup.io",
    version = "v1",
    kind = "Probe",
    namespaced,
    status = "ProbeStatus"
)]
struct ProbeSpec {
    size: i32,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, JsonSchema)]
struct ProbeStatus {
    phase: String,
}

async fn install_probe_crd(client: &kube::Client) {
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    let crd = Probe::crd();
    let name = crd.name_any();
    crds.patch(
        &name,
        &PatchParams::apply("fsxbo-tests").force(),
        &Patch::Apply(&crd),
    )
    .await
    .expect("apply CRD");
    tokio::time::timeout(
        Duration::from_secs(30),
        await_condition(crds, &name, conditions::is_crd_established()),
    )
    .await
    .expect("CRD established in time")
    .expect("watch CRD");
}

#[tokio::test]
async fn crd_crud_watch_status_and_conflicts_against_real_apiserver() {
    crate::support::with_namespace("apiserver", |client, ns| async move {
        install_probe_crd(&client).await;
        let probes: Api<Probe> = Api::namespaced(client.clone(), &ns);

        // Watch from before the create, so the stream must deliver every change.
        let mut events = watcher(probes.clone(), watcher::Config::default())
            .applied_objects()
            .boxed();

        // Create, get, list.
        let created = probes
            .create(
                &PostParams::default(),
                &Probe::new("first", ProbeSpec { size: 1 }),
            )
            .await
            .expect("create");
        let fetched = probes.get("first").await.expect("get");
        assert_eq!(fetched.spec.size, 1);
        assert_eq!(fetched.uid(), created.uid());
        let listed = probes.list(&ListParams::default()).await.expect("list");
        assert_eq!(
            listed
                .items
                .iter()
                .map(ResourceExt::name_any)
                .collect::<Vec<_>>(),
            ["first"]
        );

        // Watch sees the create and a later change.
        let seen = next_matching(&mut events, |p| p.spec.size == 1).await;
        assert_eq!(seen.name_any(), "first");
        // Server-side apply tracks field ownership: the field set by `create`
        // belongs to another manager, so a non-forced apply conflicts.
        let resize = Patch::Apply(json!({
            "apiVersion": "probe.fsxbackup.io/v1", "kind": "Probe", "spec": {"size": 2}
        }));
        match probes
            .patch("first", &PatchParams::apply("fsxbo-tests"), &resize)
            .await
        {
            Err(kube::Error::Api(status)) => assert_eq!(status.code, 409, "{status:?}"),
            other => panic!("apply over another manager's field must conflict: {other:?}"),
        }
        probes
            .patch("first", &PatchParams::apply("fsxbo-tests").force(), &resize)
            .await
            .expect("forced apply");
        next_matching(&mut events, |p| p.spec.size == 2).await;

        // Status through the /status subresource with server-side apply:
        // status changes, spec does not, generation does not move.
        let before = probes.get("first").await.expect("get");
        let patched = probes
            .patch_status(
                "first",
                &PatchParams::apply("fsxbo-status").force(),
                &Patch::Apply(json!({
                    "apiVersion": "probe.fsxbackup.io/v1", "kind": "Probe",
                    "status": {"phase": "Ready"}
                })),
            )
            .await
            .expect("apply status");
        assert_eq!(
            patched.status.as_ref().map(|s| s.phase.as_str()),
            Some("Ready")
        );
        assert_eq!(patched.spec.size, 2);
        assert_eq!(patched.metadata.generation, before.metadata.generation);
        let managers: Vec<_> = patched
            .managed_fields()
            .iter()
            .filter(|m| m.subresource.as_deref() == Some("status"))
            .filter_map(|m| m.manager.clone())
            .collect();
        assert_eq!(
            managers,
            ["fsxbo-status"],
            "status owned by its own field manager"
        );

        // A status sent to the main resource is ignored: the subresource is real.
        let mut via_main = probes.get("first").await.expect("get");
        via_main.status = Some(ProbeStatus {
            phase: "Hijacked".into(),
        });
        let replaced = probes
            .replace("first", &PostParams::default(), &via_main)
            .await
            .expect("replace");
        assert_eq!(replaced.status.map(|s| s.phase), Some("Ready".into()));

        // Optimistic concurrency: an update carrying a stale resourceVersion is a 409.
        let stale = probes.get("first").await.expect("get");
        let mut fresh = stale.clone();
        fresh.spec.size = 3;
        probes
            .replace("first", &PostParams::default(), &fresh)
            .await
            .expect("update");
        let mut late = stale;
        late.spec.size = 4;
        match probes.replace("first", &PostParams::default(), &late).await {
            Err(kube::Error::Api(status)) => {
                assert_eq!(status.code, 409, "stale update must conflict: {status:?}");
                assert_eq!(status.reason, "Conflict");
            }
            other => panic!("stale update was not rejected: {other:?}"),
        }
        assert_eq!(probes.get("first").await.expect("get").spec.size, 3);
    })
    .await;
}

async fn next_matching<S>(events: &mut S, want: impl Fn(&Probe) -> bool) -> Probe
where
    S: futures::Stream<Item = Result<Probe, watcher::Error>> + Unpin,
{
    tokio::time::timeout(Duration::from_secs(30), async {
        loop {
            let probe = events
                .try_next()
                .await
                .expect("watch stream")
                .expect("watch ended");
            if want(&probe) {
                return probe;
            }
        }
    })
    .await
    .expect("watch delivered the change in time")
}

/// The operator's own Kubernetes client (HTTP/2, `src/kube_client.rs`) against the
/// real apiserver: it reads and watches, verifies the certificate against the
/// kubeconfig's `tls-server-name` when one is set, and refuses a `proxy-url`
/// it would otherwise bypass.
#[tokio::test]
async fn the_operators_client_honours_the_kubeconfigs_tls_settings() {
    use fsx_backup_operator::kube_client::{Use, build};
    use k8s_openapi::api::core::v1::Namespace;
    let kubeconfig =
        kube::config::Kubeconfig::read_from(&crate::support::control_plane().kubeconfig)
            .expect("kubeconfig");
    let config = kube::Config::from_custom_kubeconfig(
        kubeconfig,
        &kube::config::KubeConfigOptions::default(),
    )
    .await
    .expect("config");
    let get = |config: kube::Config, purpose: Use| async move {
        let client = build(&config, purpose).expect("client");
        Api::<Namespace>::all(client).get("default").await
    };
    get(config.clone(), Use::Calls { max_in_flight: 4 })
        .await
        .expect("a call");
    get(config.clone(), Use::Watches)
        .await
        .expect("a read on the watch client");
    // A name the certificate carries (a SAN other than the URL's 127.0.0.1).
    let mut named = config.clone();
    named.tls_server_name = Some("kubernetes.default.svc".into());
    get(named, Use::Calls { max_in_flight: 0 })
        .await
        .expect("verified as kubernetes.default.svc");
    // A name it does not carry: the TLS handshake fails, so the name was used.
    let mut wrong = config.clone();
    wrong.tls_server_name = Some("not-the-apiserver.example".into());
    assert!(
        get(wrong, Use::Calls { max_in_flight: 0 }).await.is_err(),
        "a wrong name is refused"
    );
    let mut proxied = config;
    proxied.proxy_url = Some("http://127.0.0.1:3128".parse().expect("uri"));
    let Err(refused) = build(&proxied, Use::Watches) else {
        panic!("a proxy-url is refused");
    };
    assert!(refused.contains("proxy-url"), "{refused}");
}
