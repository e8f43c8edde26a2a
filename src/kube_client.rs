//! The Kubernetes clients: HTTP/2 to the apiserver where it offers it (it does,
//! over TLS), so every call and watch of a client shares one connection instead
//! of one HTTP/1.1 connection per call in flight; kube-rs's own client speaks
//! HTTP/1.1 only, and its unbounded pool held thousands of connections (and
//! their TLS state) when thousands of objects were reconciled at once.

use std::time::Duration;

use hyper_util::client::legacy::Client as HyperClient;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use kube::client::{Body, ConfigExt};
use tower::{BoxError, ServiceBuilder, ServiceExt as _};

/// Longest wait for one Kubernetes API answer outside watches: a hung call fails
/// the reconcile (retried with backoff) instead of holding it forever.
pub const CALL_TIMEOUT: Duration = Duration::from_secs(30);

/// HTTP/2 pings on an idle connection: a dead peer is noticed within
/// `KEEP_ALIVE + KEEP_ALIVE_TIMEOUT` (there is no per-socket read timeout: one
/// connection carries long watches and short calls alike).
const KEEP_ALIVE: Duration = Duration::from_secs(30);
const KEEP_ALIVE_TIMEOUT: Duration = Duration::from_secs(10);

/// Idle HTTP/1.1 connections kept per host, for an apiserver without HTTP/2.
const MAX_IDLE_PER_HOST: usize = 8;

/// What a client is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Use {
    /// Watches: long reads, guarded by the watcher's own timeouts.
    Watches,
    /// Every other call: [`CALL_TIMEOUT`] each, at most `max_in_flight` at once
    /// (0: no limit), calls beyond it waiting their turn.
    Calls { max_in_flight: u16 },
}

/// A client for `config`, over HTTP/2 when the apiserver offers it.
pub fn build(config: &kube::Config, purpose: Use) -> Result<kube::Client, String> {
    let cannot = |err: &dyn std::fmt::Display| format!("cannot build a Kubernetes client: {err}");
    if let Some(proxy) = &config.proxy_url {
        // Refused rather than ignored: calls would bypass the proxy the
        // kubeconfig asks for.
        return Err(format!(
            "the kubeconfig's proxy-url ({proxy}) is not supported; reach the apiserver directly"
        ));
    }
    let tls = config.rustls_client_config().map_err(|e| cannot(&e))?;
    let mut http = HttpConnector::new();
    http.enforce_http(false);
    http.set_connect_timeout(config.connect_timeout);
    let mut builder = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(tls)
        .https_or_http();
    if let Some(name) = &config.tls_server_name {
        let name = rustls_pki_types::ServerName::try_from(name.clone())
            .map_err(|e| cannot(&format!("tls-server-name {name}: {e}")))?;
        builder =
            builder.with_server_name_resolver(hyper_rustls::FixedServerNameResolver::new(name));
    }
    let https = builder.enable_http1().enable_http2().wrap_connector(http);
    let hyper: HyperClient<_, Body> = HyperClient::builder(TokioExecutor::new())
        .timer(TokioTimer::new())
        .pool_timer(TokioTimer::new())
        .pool_max_idle_per_host(MAX_IDLE_PER_HOST)
        .http2_keep_alive_interval(KEEP_ALIVE)
        .http2_keep_alive_timeout(KEEP_ALIVE_TIMEOUT)
        .http2_keep_alive_while_idle(true)
        .build(https);
    let auth = config.auth_layer().map_err(|e| cannot(&e))?;
    let headers = config.extra_headers_layer().map_err(|e| cannot(&e))?;
    let stack = ServiceBuilder::new()
        .layer(config.base_uri_layer())
        .layer(headers)
        .option_layer(auth)
        .map_err(BoxError::from)
        .service(hyper);
    let namespace = config.default_namespace.clone();
    Ok(match purpose {
        Use::Watches => kube::Client::new(stack, namespace),
        Use::Calls { max_in_flight } => {
            let limit = (max_in_flight > 0).then(|| usize::from(max_in_flight));
            let calls = ServiceBuilder::new()
                .option_layer(limit.map(tower::limit::ConcurrencyLimitLayer::new))
                .layer(tower::timeout::TimeoutLayer::new(CALL_TIMEOUT))
                .service(stack)
                .map_err(BoxError::from);
            kube::Client::new(calls, namespace)
        }
    })
}
