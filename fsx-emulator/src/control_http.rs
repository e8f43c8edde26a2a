//! The control API over HTTP, for shell scripts and benchmarks that run the
//! `fsx-emulator` binary instead of embedding the library.
//!
//! Every endpoint mirrors a method of [`Emulator`]; bodies and responses are
//! plain JSON with `snake_case` members (`region`, `seed`, ...), and seeds,
//! roles, timing, faults and limits use the serde form of the public types.
//! Bodies that name a Region take an optional `account` (12 digits; the
//! default account when absent); `GET /_emulator/state?account=...` shows
//! another account.

use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use hyper::{Method, Request};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use crate::server::{HttpResponse, MAX_BODY_BYTES, json_response};
use crate::types::{
    BackupLifecycle, BackupSeed, ControlError, Faults, FileSystemSeed, Limits, RoleSeed, Timing,
    VolumeSeed,
};
use crate::{ACCOUNT_ID, Emulator};

/// Paths of the control API, for `405 Method Not Allowed` vs `404`.
const PATHS: &[&str] = &[
    "/_emulator/health",
    "/_emulator/state",
    "/_emulator/requests",
    "/_emulator/reset",
    "/_emulator/file-systems",
    "/_emulator/volumes",
    "/_emulator/backups",
    "/_emulator/timing",
    "/_emulator/faults",
    "/_emulator/limits",
    "/_emulator/fail-next-backup",
    "/_emulator/lifecycle",
    "/_emulator/restoring",
    "/_emulator/roles",
    "/_emulator/accounts",
];

#[derive(Debug)]
struct HttpError {
    status: u16,
    message: String,
}

impl HttpError {
    fn new(status: u16, message: impl Into<String>) -> Self {
        Self {
            status,
            message: message.into(),
        }
    }
}

impl From<ControlError> for HttpError {
    fn from(error: ControlError) -> Self {
        let status = match error {
            ControlError::InvalidArgument(_) => 400,
            ControlError::NotFound(_) => 404,
            ControlError::AlreadyExists(_) => 409,
        };
        Self::new(status, error.to_string())
    }
}

fn default_account() -> String {
    ACCOUNT_ID.to_owned()
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SeedRequest<T> {
    #[serde(default = "default_account")]
    account: String,
    region: String,
    seed: T,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FailNextRequest {
    #[serde(default = "default_account")]
    account: String,
    region: String,
    target_id: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct LifecycleRequest {
    #[serde(default = "default_account")]
    account: String,
    region: String,
    backup_id: String,
    lifecycle: BackupLifecycle,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RestoringRequest {
    #[serde(default = "default_account")]
    account: String,
    region: String,
    backup_id: String,
    file_system_id: Option<String>,
}

/// The `account` query parameter (`?account=222222222222`), the default
/// account when absent.
fn account_param(query: Option<&str>) -> Result<String, HttpError> {
    let Some(value) = query
        .unwrap_or_default()
        .split('&')
        .find_map(|pair| pair.strip_prefix("account="))
    else {
        return Ok(default_account());
    };
    if crate::state::is_account_id(value) {
        Ok(value.to_owned())
    } else {
        Err(HttpError::new(
            400,
            format!("'{value}' is not an AWS account id (12 digits)"),
        ))
    }
}

pub(crate) async fn handle(emulator: &Emulator, req: Request<Incoming>) -> HttpResponse {
    let method = req.method().clone();
    let path = req.uri().path().trim_end_matches('/').to_owned();
    let query = req.uri().query().map(str::to_owned);
    let body = match Limited::new(req.into_body(), MAX_BODY_BYTES)
        .collect()
        .await
    {
        Ok(collected) => collected.to_bytes(),
        Err(error) => {
            return json_response(
                400,
                &json!({ "error": format!("unreadable body: {error}") }),
            );
        }
    };
    match route(emulator, &method, &path, query.as_deref(), &body) {
        Ok((status, value)) => json_response(status, &value),
        Err(error) => json_response(error.status, &json!({ "error": error.message })),
    }
}

fn parse<T: DeserializeOwned>(body: &[u8]) -> Result<T, HttpError> {
    serde_json::from_slice(body).map_err(|e| HttpError::new(400, format!("invalid JSON body: {e}")))
}

fn to_json<T: serde::Serialize>(value: &T) -> Result<(u16, Value), HttpError> {
    serde_json::to_value(value)
        .map(|v| (200, v))
        .map_err(|e| HttpError::new(500, format!("cannot serialize: {e}")))
}

fn ok() -> (u16, Value) {
    (200, json!({ "ok": true }))
}

fn route(
    emulator: &Emulator,
    method: &Method,
    path: &str,
    query: Option<&str>,
    body: &[u8],
) -> Result<(u16, Value), HttpError> {
    let read = *method == Method::GET;
    let write = *method == Method::POST || *method == Method::PUT;
    match path {
        "/_emulator/health" if read => Ok((200, json!({ "status": "ok" }))),
        "/_emulator/state" if read => to_json(&emulator.state_of(&account_param(query)?)),
        "/_emulator/accounts" if read => to_json(&json!({ "accounts": emulator.accounts() })),
        "/_emulator/roles" if read => to_json(&json!({ "roles": emulator.roles() })),
        "/_emulator/roles" if write => {
            let role: RoleSeed = parse(body)?;
            let arn = role.arn.clone();
            emulator.add_role(role)?;
            Ok((201, json!({ "arn": arn })))
        }
        "/_emulator/requests" if read => to_json(&json!({
            "requests": emulator.requests(),
            "max_copies_in_progress": emulator.max_copies_in_progress(),
        })),
        "/_emulator/requests" if *method == Method::DELETE => {
            emulator.clear_requests();
            Ok(ok())
        }
        "/_emulator/reset" if write => {
            emulator.reset();
            Ok(ok())
        }
        "/_emulator/file-systems" if write => {
            let request: SeedRequest<FileSystemSeed> = parse(body)?;
            let id =
                emulator.seed_file_system_in(&request.account, &request.region, request.seed)?;
            Ok((201, json!({ "id": id })))
        }
        "/_emulator/volumes" if write => {
            let request: SeedRequest<VolumeSeed> = parse(body)?;
            let id = emulator.seed_volume_in(&request.account, &request.region, request.seed)?;
            Ok((201, json!({ "id": id })))
        }
        "/_emulator/backups" if write => {
            let request: SeedRequest<BackupSeed> = parse(body)?;
            let id = emulator.seed_backup_in(&request.account, &request.region, request.seed)?;
            Ok((201, json!({ "id": id })))
        }
        "/_emulator/timing" if read => to_json(&emulator.timing()),
        "/_emulator/timing" if write => {
            emulator.set_timing(parse::<Timing>(body)?);
            Ok(ok())
        }
        "/_emulator/faults" if read => to_json(&emulator.faults()),
        "/_emulator/faults" if write => {
            emulator.set_faults(parse::<Faults>(body)?);
            Ok(ok())
        }
        "/_emulator/limits" if read => to_json(&emulator.limits()),
        "/_emulator/limits" if write => {
            emulator.set_limits(parse::<Limits>(body)?);
            Ok(ok())
        }
        "/_emulator/fail-next-backup" if write => {
            let request: FailNextRequest = parse(body)?;
            emulator.fail_next_backup_in(&request.account, &request.region, &request.target_id);
            Ok(ok())
        }
        "/_emulator/lifecycle" if write => {
            let request: LifecycleRequest = parse(body)?;
            emulator.set_lifecycle_in(
                &request.account,
                &request.region,
                &request.backup_id,
                request.lifecycle,
            )?;
            Ok(ok())
        }
        "/_emulator/restoring" if write => {
            let request: RestoringRequest = parse(body)?;
            emulator.set_restoring_in(
                &request.account,
                &request.region,
                &request.backup_id,
                request.file_system_id.as_deref(),
            )?;
            Ok(ok())
        }
        p if PATHS.contains(&p) => Err(HttpError::new(
            405,
            format!("{method} is not allowed on {p}"),
        )),
        p => Err(HttpError::new(404, format!("no control endpoint {p}"))),
    }
}
