//! An [`FsxApi`] that counts every request by operation and result code, around
//! any other implementation, so metrics need no hooks inside the SDK client.

use std::collections::BTreeMap;
use std::sync::Arc;

use super::{
    Backup, BackupTarget, BackupsById, CopyBackupRequest, CreateBackupRequest, Deleted, FileSystem,
    FsxApi, FsxError,
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

    fn count<T>(&self, operation: &str, result: Result<T, FsxError>) -> Result<T, FsxError> {
        let code = match &result {
            Ok(_) => "ok".to_owned(),
            Err(err) => err.code().to_owned(),
        };
        self.metrics
            .aws_requests
            .get_or_create(&AwsLabels {
                operation: operation.to_owned(),
                code,
            })
            .inc();
        result
    }
}

impl<F: FsxApi> FsxApi for MeteredFsx<F> {
    async fn create_backup(
        &self,
        region: &str,
        request: &CreateBackupRequest,
    ) -> Result<Backup, FsxError> {
        self.count(
            "CreateBackup",
            self.inner.create_backup(region, request).await,
        )
    }

    async fn describe_backups_of(
        &self,
        region: &str,
        target: &BackupTarget,
    ) -> Result<Vec<Backup>, FsxError> {
        self.count(
            "DescribeBackups",
            self.inner.describe_backups_of(region, target).await,
        )
    }

    async fn describe_backups_by_ids(
        &self,
        region: &str,
        ids: &[String],
    ) -> Result<BackupsById, FsxError> {
        self.count(
            "DescribeBackups",
            self.inner.describe_backups_by_ids(region, ids).await,
        )
    }

    async fn delete_backup(&self, region: &str, backup_id: &str) -> Result<Deleted, FsxError> {
        self.count(
            "DeleteBackup",
            self.inner.delete_backup(region, backup_id).await,
        )
    }

    async fn copy_backup(
        &self,
        destination_region: &str,
        request: &CopyBackupRequest,
    ) -> Result<Backup, FsxError> {
        self.count(
            "CopyBackup",
            self.inner.copy_backup(destination_region, request).await,
        )
    }

    async fn describe_file_systems(&self, region: &str) -> Result<Vec<FileSystem>, FsxError> {
        self.count(
            "DescribeFileSystems",
            self.inner.describe_file_systems(region).await,
        )
    }

    async fn describe_user_backups(&self, region: &str) -> Result<Vec<Backup>, FsxError> {
        self.count(
            "DescribeBackups",
            self.inner.describe_user_backups(region).await,
        )
    }

    async fn tag_backup(
        &self,
        region: &str,
        arn: &str,
        tags: &BTreeMap<String, String>,
    ) -> Result<(), FsxError> {
        self.count(
            "TagResource",
            self.inner.tag_backup(region, arn, tags).await,
        )
    }
}
