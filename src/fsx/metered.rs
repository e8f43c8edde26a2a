//! An [`FsxApi`] that counts every request by operation and result code, around
//! any other implementation, so metrics need no hooks inside the SDK client.

use std::collections::BTreeMap;
use std::sync::Arc;

use super::{
    Backup, BackupTarget, BackupsById, ByTarget, CopyBackupRequest, CreateBackupRequest, Deleted,
    FileSystem, FsxApi, FsxError, Place,
};
use crate::metrics::{AwsLabels, Metrics};

/// Counts requests of the wrapped FSx client in `fsxbackup_aws_requests_total`.
#[derive(Debug)]
pub struct MeteredFsx<F> {
    inner: F,
    metrics: Arc<Metrics>,
}

impl<F> MeteredFsx<F> {
    pub fn new(inner: F, metrics: Arc<Metrics>) -> Self {
        Self { inner, metrics }
    }

    fn count<T>(
        &self,
        at: &Place,
        operation: &str,
        result: Result<T, FsxError>,
    ) -> Result<T, FsxError> {
        let code = match &result {
            Ok(_) => "ok".to_owned(),
            Err(err) => err.code().to_owned(),
        };
        // A call that failed before FSx, on its role's AssumeRole, counts as that.
        let operation = match &result {
            Err(err) if err.operation() == "AssumeRole" => "AssumeRole",
            _ => operation,
        };
        self.metrics
            .aws_requests
            .get_or_create(&AwsLabels {
                operation: operation.to_owned(),
                code,
                account: at.account().to_owned(),
            })
            .inc();
        result
    }
}

impl<F: FsxApi> FsxApi for MeteredFsx<F> {
    async fn create_backup(
        &self,
        at: &Place,
        request: &CreateBackupRequest,
    ) -> Result<Backup, FsxError> {
        self.count(
            at,
            "CreateBackup",
            self.inner.create_backup(at, request).await,
        )
    }

    /// Counted as one call, failed when any target's answer failed.
    async fn describe_backups_of_targets(&self, at: &Place, targets: &[BackupTarget]) -> ByTarget {
        let answers = self.inner.describe_backups_of_targets(at, targets).await;
        let first_failure = answers.values().find_map(|a| a.as_ref().err()).cloned();
        let _ = self.count(at, "DescribeBackups", first_failure.map_or(Ok(()), Err));
        answers
    }

    async fn describe_backups_by_ids(
        &self,
        at: &Place,
        ids: &[String],
    ) -> Result<BackupsById, FsxError> {
        self.count(
            at,
            "DescribeBackups",
            self.inner.describe_backups_by_ids(at, ids).await,
        )
    }

    async fn delete_backup(&self, at: &Place, backup_id: &str) -> Result<Deleted, FsxError> {
        self.count(
            at,
            "DeleteBackup",
            self.inner.delete_backup(at, backup_id).await,
        )
    }

    async fn copy_backup(
        &self,
        destination: &Place,
        request: &CopyBackupRequest,
    ) -> Result<Backup, FsxError> {
        self.count(
            destination,
            "CopyBackup",
            self.inner.copy_backup(destination, request).await,
        )
    }

    async fn describe_file_systems(&self, at: &Place) -> Result<Vec<FileSystem>, FsxError> {
        self.count(
            at,
            "DescribeFileSystems",
            self.inner.describe_file_systems(at).await,
        )
    }

    async fn describe_user_backups(&self, at: &Place) -> Result<Vec<Backup>, FsxError> {
        self.count(
            at,
            "DescribeBackups",
            self.inner.describe_user_backups(at).await,
        )
    }

    async fn assume(&self, at: &Place) -> Result<(), FsxError> {
        let result = self.inner.assume(at).await;
        // Only failures are counted: a fresh session costs no call.
        if result.is_err() {
            return self.count(at, "AssumeRole", result);
        }
        result
    }

    async fn tag_backup(
        &self,
        at: &Place,
        arn: &str,
        tags: &BTreeMap<String, String>,
    ) -> Result<(), FsxError> {
        self.count(
            at,
            "TagResource",
            self.inner.tag_backup(at, arn, tags).await,
        )
    }
}
