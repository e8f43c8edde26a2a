//! SNS notifications, as AWS's custom-schedule solution sends them: failures
//! always, successes when an object asks. Publishing runs in the background with
//! a timeout, so a slow or failing SNS never holds up a backup; its failures are
//! logged and counted (`fsxbackup_notifications_total{outcome="failed"}`).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_sdk_sns::Client;
use aws_sdk_sns::config::Region;

use crate::metrics::{Metrics, OutcomeLabels};

const PUBLISH_TIMEOUT: Duration = Duration::from_secs(10);
/// SNS limits subjects to 100 printable ASCII characters.
const MAX_SUBJECT: usize = 100;

/// One notification: who, what, and the details a person needs to act.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Notification {
    pub topic_arn: String,
    /// `Failed`, `Succeeded`, …: the first word of the subject.
    pub outcome: &'static str,
    /// `FsxBackupSchedule` or `FsxBackupCopy`.
    pub kind: &'static str,
    pub namespace: String,
    pub name: String,
    /// File system, volume or source backup the event is about.
    pub target: String,
    pub backup_id: Option<String>,
    /// What happened, in a sentence (the error for failures).
    pub detail: String,
}

impl Notification {
    /// `FsxBackupSchedule storage/nightly`.
    pub fn object(&self) -> String {
        format!("{} {}/{}", self.kind, self.namespace, self.name)
    }

    pub fn subject(&self) -> String {
        let subject = format!(
            "FSx backup {}: {} {}",
            self.outcome,
            self.object(),
            self.target
        );
        subject
            .chars()
            .filter(|c| c.is_ascii() && !c.is_ascii_control())
            .take(MAX_SUBJECT)
            .collect()
    }

    pub fn body(&self) -> String {
        format!(
            "{}\n\nObject: {}\nTarget: {}\nBackup: {}\nResult: {}\n\nStatus and events: kubectl describe -n {} {} {}",
            self.detail,
            self.object(),
            self.target,
            self.backup_id.as_deref().unwrap_or("-"),
            self.outcome,
            self.namespace,
            self.kind.to_lowercase(),
            self.name,
        )
    }
}

/// The Region of a topic ARN (`arn:aws:sns:REGION:ACCOUNT:NAME`).
pub fn topic_region(arn: &str) -> Option<&str> {
    let mut parts = arn.split(':');
    match (parts.next(), parts.next(), parts.next(), parts.next()) {
        (Some("arn"), Some(_partition), Some("sns"), Some(region)) if !region.is_empty() => {
            Some(region)
        }
        _ => None,
    }
}

/// Publishes to SNS with one client per topic Region.
#[derive(Debug, Clone)]
pub struct Notifier {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    base: aws_config::SdkConfig,
    endpoint_url: Option<String>,
    clients: Mutex<HashMap<String, Client>>,
    metrics: Arc<Metrics>,
}

impl Notifier {
    pub fn new(
        base: aws_config::SdkConfig,
        endpoint_url: Option<String>,
        metrics: Arc<Metrics>,
    ) -> Self {
        Self {
            inner: Arc::new(Inner {
                base,
                endpoint_url,
                clients: Mutex::default(),
                metrics,
            }),
        }
    }

    fn client(&self, region: &str) -> Client {
        let mut clients = self
            .inner
            .clients
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        clients
            .entry(region.to_owned())
            .or_insert_with(|| {
                let mut builder = aws_sdk_sns::config::Builder::from(&self.inner.base)
                    .region(Region::new(region.to_owned()));
                if let Some(url) = &self.inner.endpoint_url {
                    builder = builder.endpoint_url(url);
                }
                Client::from_conf(builder.build())
            })
            .clone()
    }

    /// Sends `notification` in the background; never blocks or fails the caller.
    pub fn send(&self, notification: Notification) {
        let this = self.clone();
        tokio::spawn(async move {
            let outcome = match this.publish(&notification).await {
                Ok(()) => "sent",
                Err(error) => {
                    tracing::warn!(topic = %notification.topic_arn, object = %notification.object(), target = %notification.target, %error, "SNS notification failed");
                    "failed"
                }
            };
            this.inner
                .metrics
                .notifications
                .get_or_create(&OutcomeLabels {
                    outcome: outcome.to_owned(),
                })
                .inc();
        });
    }

    async fn publish(&self, notification: &Notification) -> Result<(), String> {
        let region = topic_region(&notification.topic_arn)
            .ok_or_else(|| format!("{} is not an SNS topic ARN", notification.topic_arn))?;
        let request = self
            .client(region)
            .publish()
            .topic_arn(&notification.topic_arn)
            .subject(notification.subject())
            .message(notification.body())
            .send();
        match tokio::time::timeout(PUBLISH_TIMEOUT, request).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(err)) => Err(aws_sdk_sns::error::DisplayErrorContext(err).to_string()),
            Err(_) => Err(format!("no answer from SNS within {PUBLISH_TIMEOUT:?}")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topic_regions_come_from_the_arn() {
        assert_eq!(
            topic_region("arn:aws:sns:us-east-1:111111111111:backups"),
            Some("us-east-1")
        );
        assert_eq!(
            topic_region("arn:aws-cn:sns:cn-north-1:111111111111:b"),
            Some("cn-north-1")
        );
        assert_eq!(topic_region("arn:aws:sqs:us-east-1:111111111111:q"), None);
        assert_eq!(topic_region("backups"), None);
    }

    #[test]
    fn subject_and_body_carry_what_a_person_needs() {
        let n = Notification {
            topic_arn: "arn:aws:sns:us-east-1:111111111111:backups".into(),
            outcome: "Failed",
            kind: "FsxBackupSchedule",
            namespace: "storage".into(),
            name: "nightly".into(),
            target: "fs-0123456789abcdef0".into(),
            backup_id: Some("backup-0123456789abcdef0".into()),
            detail: "backup backup-0123456789abcdef0 of fs-0123456789abcdef0 FAILED: disk full"
                .into(),
        };
        assert_eq!(
            n.subject(),
            "FSx backup Failed: FsxBackupSchedule storage/nightly fs-0123456789abcdef0"
        );
        let body = n.body();
        for part in [
            "disk full",
            "Object: FsxBackupSchedule storage/nightly",
            "Target: fs-0123456789abcdef0",
            "Backup: backup-0123456789abcdef0",
            "Result: Failed",
            "kubectl describe -n storage fsxbackupschedule nightly",
        ] {
            assert!(body.contains(part), "{body}");
        }
        let long = Notification {
            target: "x".repeat(300),
            ..n
        };
        assert!(long.subject().len() <= MAX_SUBJECT);
    }
}
