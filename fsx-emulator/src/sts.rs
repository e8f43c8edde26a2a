//! The STS peer, served on the same port as FSx: the AWS Query protocol
//! (`POST /`, a form-encoded body `Action=AssumeRole&Version=2011-06-15&...`,
//! XML responses) for `AssumeRole` and `GetCallerIdentity`, so the
//! unmodified `aws-sdk-sts` client can get credentials for a role in another
//! account and hand them to `aws-sdk-fsx`.
//!
//! Roles exist only when registered through the control API
//! ([`crate::Emulator::add_role`]); their trust policy is reduced to
//! `trusted` and an optional required `ExternalId`. Error codes and HTTP
//! statuses are the ones STS answers with: `AccessDenied` 403,
//! `ValidationError` 400, `Throttling` 400, `InvalidAction` 400,
//! `InvalidClientTokenId` 403, `ExpiredToken` 403, `InternalFailure` 500.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http_body_util::Full;
use hyper::Response;
use hyper::header::{CONTENT_TYPE, HeaderName, HeaderValue};
use hyper::http::request::Parts;

use crate::Emulator;
use crate::identity::{
    BASE64, Caller, CredentialError, ISSUED_KEY_PREFIX, MAX_ROLE_SESSION_SECONDS, Session,
    UPPER_ALNUM, is_external_id_char, is_name_char, parse_role_arn, random_string,
};
use crate::region::{ScopeError, partition, scope_from_authorization};
use crate::server::{HttpResponse, ResponseDropped, header, sdk_attempt};
use crate::state::{FaultAction, State};
use crate::time::{epoch_seconds, iso8601};
use crate::types::RequestRecord;
use crate::validate::Violations;

/// The XML namespace of every STS response.
const XMLNS: &str = "https://sts.amazonaws.com/doc/2011-06-15/";

/// The only STS API version.
const VERSION: &str = "2011-06-15";

/// `DurationSeconds` when `AssumeRole` is called without one.
const DEFAULT_DURATION_SECONDS: u32 = 3_600;

/// Role chaining (assuming a role with role credentials) caps sessions at
/// one hour.
const CHAINED_MAX_SECONDS: u32 = 3_600;

/// The STS actions the emulator implements.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Action {
    AssumeRole,
    GetCallerIdentity,
}

impl Action {
    fn name(self) -> &'static str {
        match self {
            Self::AssumeRole => "AssumeRole",
            Self::GetCallerIdentity => "GetCallerIdentity",
        }
    }

    fn from_name(name: &str) -> Option<Self> {
        [Self::AssumeRole, Self::GetCallerIdentity]
            .into_iter()
            .find(|a| a.name() == name)
    }
}

/// An STS error response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct StsError {
    code: &'static str,
    message: String,
    status: u16,
}

impl StsError {
    fn new(status: u16, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
            status,
        }
    }

    fn access_denied(caller_arn: &str, action: &str, resource: Option<&str>) -> Self {
        let on = resource.map_or_else(String::new, |r| format!(" on resource: {r}"));
        Self::new(
            403,
            "AccessDenied",
            format!("User: {caller_arn} is not authorized to perform: sts:{action}{on}"),
        )
    }

    fn validation(message: impl Into<String>) -> Self {
        Self::new(400, "ValidationError", message)
    }

    fn throttling() -> Self {
        Self::new(400, "Throttling", "Rate exceeded")
    }

    fn internal_failure() -> Self {
        Self::new(
            500,
            "InternalFailure",
            "The request processing has failed because of an unknown error, exception or failure.",
        )
    }

    /// `Sender` for client errors, `Receiver` for server errors.
    fn fault_type(&self) -> &'static str {
        if self.status >= 500 {
            "Receiver"
        } else {
            "Sender"
        }
    }
}

/// Decodes an `application/x-www-form-urlencoded` body into its pairs, in
/// order (`+` is a space; a malformed `%` escape is kept as is).
fn parse_form(body: &[u8]) -> Vec<(String, String)> {
    fn decode(part: &[u8]) -> String {
        let mut out = Vec::with_capacity(part.len());
        let mut i = 0;
        while i < part.len() {
            match part[i] {
                b'+' => out.push(b' '),
                b'%' if part
                    .get(i + 1..i + 3)
                    .is_some_and(|h| h.iter().all(u8::is_ascii_hexdigit)) =>
                {
                    let hex = std::str::from_utf8(&part[i + 1..i + 3]).unwrap_or("00");
                    out.push(u8::from_str_radix(hex, 16).unwrap_or(0));
                    i += 2;
                }
                b => out.push(b),
            }
            i += 1;
        }
        String::from_utf8_lossy(&out).into_owned()
    }
    body.split(|&b| b == b'&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let mut halves = pair.splitn(2, |&b| b == b'=');
            let name = decode(halves.next().unwrap_or_default());
            let value = decode(halves.next().unwrap_or_default());
            (name, value)
        })
        .collect()
}

/// The first value of parameter `name`.
fn param<'p>(params: &'p [(String, String)], name: &str) -> Option<&'p str> {
    params
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.as_str())
}

/// Whether a request is meant for STS: signed for `sts`, or a form-encoded
/// Query request (no `X-Amz-Target`, `Action=...` body).
pub(crate) fn is_sts_request(parts: &Parts, body: &[u8]) -> bool {
    if crate::region::scoped_service(header(parts, "authorization")) == Some("sts") {
        return true;
    }
    header(parts, "x-amz-target").is_none()
        && (header(parts, "content-type")
            .is_some_and(|c| c.starts_with("application/x-www-form-urlencoded"))
            || body.starts_with(b"Action="))
}

/// Serves one STS request.
pub(crate) async fn handle(
    emulator: Emulator,
    parts: &Parts,
    body: Result<Bytes, String>,
) -> Result<HttpResponse, ResponseDropped> {
    let arrival = SystemTime::now();
    let mut record = RequestRecord {
        seq: 0,
        time: epoch_seconds(arrival),
        region: None,
        operation: String::new(),
        outcome: String::new(),
        fault: None,
        backup_ids: Vec::new(),
        client_request_token: None,
        attempt: sdk_attempt(header(parts, "amz-sdk-request")),
        account: None,
        role_arn: None,
        role_session_name: None,
    };
    let request_id = emulator.with_state(State::request_id);
    let body = match body {
        Ok(body) => body,
        Err(error) => {
            let error = StsError::new(
                400,
                "MalformedQueryString",
                format!("The request body could not be read: {error}"),
            );
            return Ok(finish(&emulator, record, Err(error), &request_id));
        }
    };
    let params = parse_form(&body);
    let action_name = param(&params, "Action").unwrap_or_default().to_owned();
    record.operation.clone_from(&action_name);
    if action_name.is_empty() {
        let error = StsError::new(
            400,
            "MissingAction",
            "The request is missing an action or a required parameter.",
        );
        return Ok(finish(&emulator, record, Err(error), &request_id));
    }
    let version = param(&params, "Version").unwrap_or(VERSION);
    let Some(action) = Action::from_name(&action_name).filter(|_| version == VERSION) else {
        let error = StsError::new(
            400,
            "InvalidAction",
            format!("Could not find operation {action_name} for version {version}"),
        );
        return Ok(finish(&emulator, record, Err(error), &request_id));
    };
    if action == Action::AssumeRole {
        let role_arn = param(&params, "RoleArn");
        record.role_arn = role_arn.map(str::to_owned);
        record.role_session_name = param(&params, "RoleSessionName").map(str::to_owned);
        record.account = role_arn.and_then(parse_role_arn).map(|arn| arn.account);
    }

    let scope = match scope_from_authorization(header(parts, "authorization")) {
        Ok(scope) => scope,
        Err(error) => {
            let error = match error {
                ScopeError::Missing => StsError::new(
                    403,
                    "MissingAuthenticationToken",
                    "Request is missing Authentication Token",
                ),
                ScopeError::Malformed(message) => {
                    StsError::new(400, "IncompleteSignature", message)
                }
                ScopeError::InvalidRegion(region) => StsError::new(
                    403,
                    "SignatureDoesNotMatch",
                    format!("Credential should be scoped to a valid region, not '{region}'."),
                ),
            };
            return Ok(finish(&emulator, record, Err(error), &request_id));
        }
    };
    record.region = Some(scope.region.clone());
    let token = header(parts, "x-amz-security-token");
    let caller = match emulator.with_state(|s| {
        s.iam.caller(
            &scope.access_key,
            token,
            partition(&scope.region),
            SystemTime::now(),
        )
    }) {
        Ok(caller) => caller,
        Err(error) => {
            let error = match error {
                CredentialError::Invalid => StsError::new(
                    403,
                    "InvalidClientTokenId",
                    "The security token included in the request is invalid.",
                ),
                CredentialError::Expired => StsError::new(
                    403,
                    "ExpiredToken",
                    "The security token included in the request is expired",
                ),
            };
            return Ok(finish(&emulator, record, Err(error), &request_id));
        }
    };
    if action == Action::GetCallerIdentity {
        record.account = Some(caller.account.clone());
        if let Some((role_arn, session)) = &caller.role {
            record.role_arn = Some(role_arn.clone());
            record.role_session_name = Some(session.clone());
        }
    }

    let plan = emulator.with_state(|s| s.plan_faults(action.name()));
    if !plan.latency.is_zero() {
        tokio::time::sleep(plan.latency).await;
    }
    let result = match plan.action {
        FaultAction::Deny => {
            record.fault = Some("access_denied".into());
            Err(StsError::access_denied(
                &caller.arn,
                action.name(),
                record
                    .role_arn
                    .as_deref()
                    .filter(|_| action == Action::AssumeRole),
            ))
        }
        FaultAction::Throttle => {
            record.fault = Some("throttled".into());
            Err(StsError::throttling())
        }
        FaultAction::ServerError => {
            record.fault = Some("server_error".into());
            Err(StsError::internal_failure())
        }
        FaultAction::None | FaultAction::DropResponse => match action {
            Action::AssumeRole => emulator
                .with_state(|s| assume_role(s, &caller, &params, SystemTime::now()))
                .map(|inner| render(action, &inner, &request_id)),
            Action::GetCallerIdentity => {
                Ok(render(action, &get_caller_identity(&caller), &request_id))
            }
        },
    };
    if plan.action == FaultAction::DropResponse {
        record.fault = Some("response_dropped".into());
        record.outcome = outcome(&result);
        emulator.with_state(|s| s.log_request(record));
        return Err(ResponseDropped);
    }
    Ok(finish(&emulator, record, result, &request_id))
}

fn outcome(result: &Result<String, StsError>) -> String {
    match result {
        Ok(_) => "ok".to_owned(),
        Err(e) => e.code.to_owned(),
    }
}

/// Logs the request and renders its response.
fn finish(
    emulator: &Emulator,
    mut record: RequestRecord,
    result: Result<String, StsError>,
    request_id: &str,
) -> HttpResponse {
    record.outcome = outcome(&result);
    let (status, body) = match result {
        Ok(body) => (200, body),
        Err(error) => {
            tracing::debug!(operation = %record.operation, code = error.code, message = %error.message, "STS error");
            (error.status, error_xml(&error, request_id))
        }
    };
    emulator.with_state(|s| s.log_request(record));
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() =
        hyper::StatusCode::from_u16(status).unwrap_or(hyper::StatusCode::INTERNAL_SERVER_ERROR);
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("text/xml"));
    if let Ok(id) = HeaderValue::from_str(request_id) {
        headers.insert(HeaderName::from_static("x-amzn-requestid"), id);
    }
    response
}

// ----- AssumeRole ----------------------------------------------------------

/// `AssumeRole`: model validation, then the role's trust (registered,
/// trusted, external id), then the session duration, then new credentials.
/// Returns the inner XML of `AssumeRoleResult`.
fn assume_role(
    state: &mut State,
    caller: &Caller,
    params: &[(String, String)],
    now: SystemTime,
) -> Result<String, StsError> {
    let role_arn = param(params, "RoleArn");
    let session_name = param(params, "RoleSessionName");
    let external_id = param(params, "ExternalId");
    let duration = param(params, "DurationSeconds");

    let mut v = Violations::default();
    v.required(role_arn, "roleArn");
    v.length(role_arn, "roleArn", 20, 2048);
    v.pattern(
        role_arn,
        "roleArn",
        |s| !s.is_empty() && s.chars().all(|c| c == '\t' || c == '\n' || c == '\r' || !c.is_control()),
        "[\\u0009\\u000A\\u000D\\u0020-\\u007E\\u0085\\u00A0-\\uD7FF\\uE000-\\uFFFD\\u10000-\\u10FFFF]+",
    );
    v.required(session_name, "roleSessionName");
    v.length(session_name, "roleSessionName", 2, 64);
    v.pattern(
        session_name,
        "roleSessionName",
        |s| s.chars().all(is_name_char),
        "[\\w+=,.@-]*",
    );
    v.length(external_id, "externalId", 2, 1224);
    v.pattern(
        external_id,
        "externalId",
        |s| s.chars().all(is_external_id_char),
        "[\\w+=,.@:\\/-]*",
    );
    let requested = match duration.map(str::parse::<i64>) {
        None => None,
        Some(Ok(seconds)) => {
            v.range(
                Some(seconds),
                "durationSeconds",
                900,
                i64::from(MAX_ROLE_SESSION_SECONDS),
            );
            u32::try_from(seconds).ok()
        }
        Some(Err(_)) => {
            v.constraint(duration, "durationSeconds", "Member must be an integer");
            None
        }
    };
    v.finish()
        .map_err(|error| StsError::validation(error.message))?;
    let (role_arn, session_name) = (
        role_arn.unwrap_or_default(),
        session_name.unwrap_or_default(),
    );
    let parsed =
        parse_role_arn(role_arn).ok_or_else(|| StsError::validation("Request ARN is invalid"))?;

    // A role that does not exist and one whose trust policy refuses the
    // caller look the same to the caller, as in AWS.
    let denied = || StsError::access_denied(&caller.arn, "AssumeRole", Some(role_arn));
    let role = state.iam.roles.get(role_arn).ok_or_else(denied)?;
    if !role.seed.trusted {
        return Err(denied());
    }
    if let Some(required) = &role.seed.external_id
        && external_id != Some(required.as_str())
    {
        return Err(denied());
    }
    let requested = requested.unwrap_or(DEFAULT_DURATION_SECONDS);
    if caller.is_role_session() && requested > CHAINED_MAX_SECONDS {
        return Err(StsError::validation(
            "The requested DurationSeconds exceeds the 1 hour session limit for roles assumed by \
             role chaining.",
        ));
    }
    if requested > role.max_session_seconds() {
        return Err(StsError::validation(
            "The requested DurationSeconds exceeds the MaxSessionDuration set for this role.",
        ));
    }
    // Test-only knob: a fixed credential lifetime overrides the duration.
    let lifetime = Duration::from_secs(
        role.seed
            .credential_lifetime_seconds
            .unwrap_or_else(|| u64::from(requested)),
    );
    let expiration = now
        .checked_add(lifetime)
        .unwrap_or_else(|| now + Duration::from_secs(u64::from(requested)));
    // `Expiration` travels in whole seconds; round up so that the
    // credentials expire exactly when the caller was told they would.
    let expiration = match expiration.duration_since(UNIX_EPOCH) {
        Ok(since) if since.subsec_nanos() > 0 => {
            UNIX_EPOCH + Duration::from_secs(since.as_secs() + 1)
        }
        _ => expiration,
    };
    let role_id = role.role_id.clone();

    let access_key_id = loop {
        let key = format!(
            "{ISSUED_KEY_PREFIX}{}",
            random_string(&mut state.rng, UPPER_ALNUM, 20 - ISSUED_KEY_PREFIX.len())
        );
        if !state.iam.sessions.contains_key(&key) {
            break key;
        }
    };
    let secret_access_key = random_string(&mut state.rng, BASE64, 40);
    let session_token = random_string(&mut state.rng, BASE64, 320);
    let assumed_role_arn = format!(
        "arn:{}:sts::{}:assumed-role/{}/{session_name}",
        parsed.partition, parsed.account, parsed.name
    );
    let assumed_role_id = format!("{role_id}:{session_name}");
    let inner = format!(
        "    <AssumedRoleUser>\n      <AssumedRoleId>{}</AssumedRoleId>\n      <Arn>{}</Arn>\n    \
         </AssumedRoleUser>\n    <Credentials>\n      <AccessKeyId>{}</AccessKeyId>\n      \
         <SecretAccessKey>{}</SecretAccessKey>\n      <SessionToken>{}</SessionToken>\n      \
         <Expiration>{}</Expiration>\n    </Credentials>\n",
        escape(&assumed_role_id),
        escape(&assumed_role_arn),
        escape(&access_key_id),
        escape(&secret_access_key),
        escape(&session_token),
        iso8601(expiration),
    );
    state.iam.sessions.insert(
        access_key_id,
        Session {
            token: session_token,
            expiration,
            account: parsed.account,
            role_arn: role_arn.to_owned(),
            role_session_name: session_name.to_owned(),
            assumed_role_arn,
            assumed_role_id,
        },
    );
    Ok(inner)
}

// ----- GetCallerIdentity ---------------------------------------------------

fn get_caller_identity(caller: &Caller) -> String {
    format!(
        "    <Arn>{}</Arn>\n    <UserId>{}</UserId>\n    <Account>{}</Account>\n",
        escape(&caller.arn),
        escape(&caller.user_id),
        escape(&caller.account)
    )
}

// ----- XML -----------------------------------------------------------------

/// Escapes text for XML character data.
fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c => out.push(c),
        }
    }
    out
}

/// A successful response around the action's result members.
fn render(action: Action, result: &str, request_id: &str) -> String {
    let name = action.name();
    format!(
        "<{name}Response xmlns=\"{XMLNS}\">\n  <{name}Result>\n{result}  </{name}Result>\n  \
         <ResponseMetadata>\n    <RequestId>{}</RequestId>\n  </ResponseMetadata>\n\
         </{name}Response>\n",
        escape(request_id)
    )
}

fn error_xml(error: &StsError, request_id: &str) -> String {
    format!(
        "<ErrorResponse xmlns=\"{XMLNS}\">\n  <Error>\n    <Type>{}</Type>\n    <Code>{}</Code>\n    \
         <Message>{}</Message>\n  </Error>\n  <RequestId>{}</RequestId>\n</ErrorResponse>\n",
        error.fault_type(),
        error.code,
        escape(&error.message),
        escape(request_id)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_forms() {
        let params = parse_form(
            b"Action=AssumeRole&RoleArn=arn%3Aaws%3Aiam%3A%3A222222222222%3Arole%2Fa+b&Empty=&Bad=%zz&Flag",
        );
        assert_eq!(param(&params, "Action"), Some("AssumeRole"));
        assert_eq!(
            param(&params, "RoleArn"),
            Some("arn:aws:iam::222222222222:role/a b")
        );
        assert_eq!(param(&params, "Empty"), Some(""));
        assert_eq!(param(&params, "Bad"), Some("%zz"));
        assert_eq!(param(&params, "Flag"), Some(""));
        assert_eq!(param(&params, "Missing"), None);
        assert_eq!(param(&parse_form(b"A=%4"), "A"), Some("%4"));
    }

    #[test]
    fn renders_errors() {
        let xml = error_xml(&StsError::throttling(), "id-1");
        assert!(xml.contains("<Type>Sender</Type>"));
        assert!(xml.contains("<Code>Throttling</Code>"));
        assert!(xml.contains("<RequestId>id-1</RequestId>"));
        let xml = error_xml(&StsError::internal_failure(), "id-2");
        assert!(xml.contains("<Type>Receiver</Type>"));
        assert_eq!(escape("a<b>&\"'"), "a&lt;b&gt;&amp;&quot;&apos;");
    }
}
