//! HTTP front end: AWS JSON 1.1 for the FSx API and the AWS Query protocol
//! for STS (both on `POST /`), the control API under `/_emulator/`,
//! credential checks and fault injection.

use std::fmt;
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::header::{CONTENT_TYPE, HeaderName, HeaderValue};
use hyper::http::request::Parts;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::Value;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::Emulator;
use crate::error::ApiError;
use crate::identity::CredentialError;
use crate::ops::{self, Operation};
use crate::region::{ScopeError, partition, scope_from_authorization};
use crate::state::FaultAction;
use crate::time::epoch_seconds;
use crate::types::RequestRecord;

/// `X-Amz-Target` prefix of FSx: the Smithy service shape name.
pub(crate) const TARGET_PREFIX: &str = "AWSSimbaAPIService_v20180301.";

/// Largest request body accepted; FSx requests are a few kilobytes at most.
pub(crate) const MAX_BODY_BYTES: usize = 1 << 20;

const JSON_1_1: &str = "application/x-amz-json-1.1";

/// Returned by the request handler to make hyper close the connection
/// without writing a response: the client sees the connection end before a
/// response arrives, which is what a lost response looks like on the wire.
#[derive(Debug)]
pub(crate) struct ResponseDropped;

impl fmt::Display for ResponseDropped {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("response dropped by fault injection")
    }
}

impl std::error::Error for ResponseDropped {}

pub(crate) type HttpResponse = Response<Full<Bytes>>;

/// Accepts connections until `shutdown` changes (or its sender is dropped),
/// then aborts the connections still open.
pub(crate) async fn serve(
    listener: TcpListener,
    emulator: Emulator,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    let emulator = emulator.clone();
                    connections.spawn(async move {
                        let service = service_fn(move |req| handle(emulator.clone(), req));
                        if let Err(error) = http1::Builder::new()
                            .serve_connection(TokioIo::new(stream), service)
                            .await
                        {
                            tracing::debug!(%peer, %error, "connection closed with an error");
                        }
                    });
                }
                Err(error) => {
                    // Typically EMFILE under load; back off briefly instead of
                    // spinning on a listener that keeps failing.
                    tracing::warn!(%error, "accept failed");
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            },
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
            _ = shutdown.changed() => break,
        }
    }
    connections.shutdown().await;
}

async fn handle(
    emulator: Emulator,
    req: Request<Incoming>,
) -> Result<HttpResponse, ResponseDropped> {
    let path = req.uri().path();
    if path == "/_emulator" || path.starts_with("/_emulator/") {
        return Ok(crate::control_http::handle(&emulator, req).await);
    }
    if req.method() != Method::POST || path != "/" {
        let error = ApiError::unknown_operation(&format!("{} {}", req.method(), path));
        return Ok(fsx_response(Err(error), None));
    }
    let (parts, body) = req.into_parts();
    let body = match Limited::new(body, MAX_BODY_BYTES).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(error) => Err(error.to_string()),
    };
    if crate::sts::is_sts_request(&parts, body.as_deref().unwrap_or_default()) {
        return crate::sts::handle(emulator, &parts, body).await;
    }
    handle_fsx(emulator, &parts, body).await
}

pub(crate) fn header<'r>(parts: &'r Parts, name: &str) -> Option<&'r str> {
    parts.headers.get(name).and_then(|v| v.to_str().ok())
}

/// The attempt number from `amz-sdk-request: attempt=2; max=3`.
pub(crate) fn sdk_attempt(value: Option<&str>) -> Option<u32> {
    value?
        .split(';')
        .find_map(|part| part.trim().strip_prefix("attempt="))
        .and_then(|n| n.parse().ok())
}

async fn handle_fsx(
    emulator: Emulator,
    req: &Parts,
    body: Result<Bytes, String>,
) -> Result<HttpResponse, ResponseDropped> {
    let arrival = SystemTime::now();
    let target = header(req, "x-amz-target").unwrap_or_default().to_owned();
    let mut record = RequestRecord {
        seq: 0,
        time: epoch_seconds(arrival),
        region: None,
        operation: target
            .strip_prefix(TARGET_PREFIX)
            .unwrap_or(&target)
            .to_owned(),
        outcome: String::new(),
        fault: None,
        backup_ids: Vec::new(),
        client_request_token: None,
        attempt: sdk_attempt(header(req, "amz-sdk-request")),
        account: None,
        role_arn: None,
        role_session_name: None,
    };
    let request_id = emulator.with_state(crate::state::State::request_id);

    let Some(operation) = target
        .strip_prefix(TARGET_PREFIX)
        .and_then(Operation::from_name)
    else {
        return Ok(finish(
            &emulator,
            record,
            Err(ApiError::unknown_operation(&target)),
            &request_id,
        ));
    };
    let scope = match scope_from_authorization(header(req, "authorization")) {
        Ok(scope) => scope,
        Err(scope) => {
            let error = match scope {
                ScopeError::Missing => ApiError::missing_authentication_token(),
                ScopeError::Malformed(message) => ApiError::incomplete_signature(message),
                ScopeError::InvalidRegion(region) => ApiError::invalid_signature(format!(
                    "Credential should be scoped to a valid region, not '{region}'."
                )),
            };
            return Ok(finish(&emulator, record, Err(error), &request_id));
        }
    };
    let region = scope.region;
    record.region = Some(region.clone());
    // Credentials the emulator's STS issued act in their role's account and
    // need their session token; any other key is the default account's.
    // JSON-protocol services answer both refusals with HTTP 400.
    let caller = match emulator.with_state(|s| {
        s.iam.caller(
            &scope.access_key,
            header(req, "x-amz-security-token"),
            partition(&region),
            SystemTime::now(),
        )
    }) {
        Ok(caller) => caller,
        Err(error) => {
            let error = match error {
                CredentialError::Invalid => ApiError::unrecognized_client(),
                CredentialError::Expired => ApiError::expired_token(),
            };
            return Ok(finish(&emulator, record, Err(error), &request_id));
        }
    };
    record.account = Some(caller.account.clone());
    if let Some((role_arn, session)) = &caller.role {
        record.role_arn = Some(role_arn.clone());
        record.role_session_name = Some(session.clone());
    }

    let body = match body {
        Ok(body) => body,
        Err(error) => {
            let error =
                ApiError::serialization(format!("The request body could not be read: {error}"));
            return Ok(finish(&emulator, record, Err(error), &request_id));
        }
    };
    record.client_request_token = serde_json::from_slice::<Value>(&body)
        .ok()
        .and_then(|v| v.get("ClientRequestToken")?.as_str().map(str::to_owned));

    let plan = emulator.with_state(|s| s.plan_faults(operation.name()));
    if !plan.latency.is_zero() {
        tokio::time::sleep(plan.latency).await;
    }
    let result = match plan.action {
        FaultAction::Deny => {
            record.fault = Some("access_denied".into());
            Err(ApiError::access_denied(&caller.arn, operation.name()))
        }
        FaultAction::Throttle => {
            record.fault = Some("throttled".into());
            Err(ApiError::throttling())
        }
        FaultAction::ServerError => {
            record.fault = Some("server_error".into());
            Err(ApiError::internal_server_error())
        }
        FaultAction::None | FaultAction::DropResponse => {
            let execution = emulator.with_state(|s| {
                ops::execute(
                    s,
                    &caller.account,
                    &region,
                    operation,
                    &body,
                    Instant::now(),
                    SystemTime::now(),
                )
            });
            record.backup_ids = execution.backup_ids;
            if execution.token.is_some() {
                record.client_request_token = execution.token;
            }
            if !plan.latency_after_write.is_zero() {
                tokio::time::sleep(plan.latency_after_write).await;
            }
            execution.result
        }
    };
    if plan.action == FaultAction::DropResponse {
        // The operation took effect; only its response is lost.
        record.fault = Some("response_dropped".into());
        record.outcome = outcome(&result);
        emulator.with_state(|s| s.log_request(record));
        return Err(ResponseDropped);
    }
    Ok(finish(&emulator, record, result, &request_id))
}

fn outcome(result: &Result<Value, ApiError>) -> String {
    match result {
        Ok(_) => "ok".to_owned(),
        Err(e) => e.code.to_owned(),
    }
}

/// Logs the request and renders its response.
fn finish(
    emulator: &Emulator,
    mut record: RequestRecord,
    result: Result<Value, ApiError>,
    request_id: &str,
) -> HttpResponse {
    record.outcome = outcome(&result);
    if let Err(error) = &result {
        tracing::debug!(operation = %record.operation, code = error.code, message = %error.message, "FSx error");
    }
    emulator.with_state(|s| s.log_request(record));
    fsx_response(result, Some(request_id))
}

fn fsx_response(result: Result<Value, ApiError>, request_id: Option<&str>) -> HttpResponse {
    let (status, body, error_code) = match result {
        Ok(body) => (200, body, None),
        Err(error) => (error.status, error.body(), Some(error.code)),
    };
    let mut response = json_response(status, &body);
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static(JSON_1_1));
    if let Some(id) = request_id.and_then(|id| HeaderValue::from_str(id).ok()) {
        headers.insert(HeaderName::from_static("x-amzn-requestid"), id);
    }
    if let Some(code) = error_code {
        headers.insert(
            HeaderName::from_static("x-amzn-errortype"),
            HeaderValue::from_static(code),
        );
    }
    response
}

/// A JSON response with the given status.
pub(crate) fn json_response(status: u16, body: &Value) -> HttpResponse {
    // Serializing a `Value` cannot fail: every map key is a string.
    let bytes = serde_json::to_vec(body).unwrap_or_default();
    let mut response = Response::new(Full::new(Bytes::from(bytes)));
    *response.status_mut() =
        StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_sdk_attempt_header() {
        assert_eq!(sdk_attempt(Some("attempt=2; max=3")), Some(2));
        assert_eq!(sdk_attempt(Some("max=3")), None);
        assert_eq!(sdk_attempt(None), None);
    }
}
