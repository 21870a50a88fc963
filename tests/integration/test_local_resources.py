"""The template's resources created in moto (in-process mock_aws) match what the template declares."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import unquote_plus

import boto3
import pytest
from moto import mock_aws

from audiomixer_local.resources import LocalResources, create_resources

FIXTURE = Path(__file__).parent / "fixtures" / "local_template.yaml"
REPO_TEMPLATE = Path(__file__).resolve().parents[2] / "template.yaml"


@pytest.fixture
def aws_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    monkeypatch.delenv("AUDIOMIXER_LOCAL_TIME_SCALE", raising=False)
    for key, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_REGION": "us-east-1",
    }.items():
        monkeypatch.setenv(key, value)
    with mock_aws():
        yield


@pytest.fixture
def res(aws_env: None) -> LocalResources:
    return create_resources(FIXTURE)


def test_queues_have_template_visibility_retention_and_redrive(res: LocalResources) -> None:
    sqs = boto3.client("sqs")
    echo = sqs.get_queue_attributes(QueueUrl=res.queues["EchoQueue"].url, AttributeNames=["All"])[
        "Attributes"
    ]
    assert echo["VisibilityTimeout"] == "60"
    policy = json.loads(echo["RedrivePolicy"])
    assert policy == {"deadLetterTargetArn": res.queues["EchoDLQ"].arn, "maxReceiveCount": 3}
    dlq = sqs.get_queue_attributes(QueueUrl=res.queues["EchoDLQ"].url, AttributeNames=["All"])["Attributes"]
    assert dlq["MessageRetentionPeriod"] == "1209600"
    ingest = res.queues["IngestQueue"]
    assert ingest.name == "audiomixer-ingest"  # QueueName: !Sub "${AWS::StackName}-ingest"
    assert res.env["AUDIOMIXER_INGEST_QUEUE_URL"] == ingest.url
    assert sqs.get_queue_url(QueueName="audiomixer-ingest")["QueueUrl"] == ingest.url


def test_time_scale_shrinks_visibility_timeouts(aws_env: None, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AUDIOMIXER_LOCAL_TIME_SCALE", "0.01")
    res = create_resources(FIXTURE)
    sqs = boto3.client("sqs")
    attrs = sqs.get_queue_attributes(
        QueueUrl=res.queues["IngestQueue"].url, AttributeNames=["VisibilityTimeout"]
    )
    assert attrs["Attributes"]["VisibilityTimeout"] == "18"  # 1800 s x 0.01
    assert res.queues["EchoQueue"].visibility_timeout == 1  # 0.6 s rounds up to the 1 s floor


def test_tables_keys_indexes_ttl_and_pitr(res: LocalResources) -> None:
    ddb = boto3.client("dynamodb")
    projects = ddb.describe_table(TableName=res.tables["ProjectsTable"])["Table"]
    assert projects["TableName"] == "audiomixer-ProjectsTable"
    assert {(k["AttributeName"], k["KeyType"]) for k in projects["KeySchema"]} == {
        ("tenant_id", "HASH"),
        ("project_id", "RANGE"),
    }
    (gsi,) = projects["GlobalSecondaryIndexes"]
    assert gsi["IndexName"] == "content_hash_index"
    assert gsi["Projection"]["ProjectionType"] == "KEYS_ONLY"
    assert projects["BillingModeSummary"]["BillingMode"] == "PAY_PER_REQUEST"
    backups = ddb.describe_continuous_backups(TableName=res.tables["ProjectsTable"])
    pitr = backups["ContinuousBackupsDescription"]["PointInTimeRecoveryDescription"]
    assert pitr["PointInTimeRecoveryStatus"] == "ENABLED"
    connections = ddb.describe_table(TableName=res.tables["ConnectionsTable"])["Table"]
    assert connections["GlobalSecondaryIndexes"][0]["IndexName"] == "subscription_index"
    ttl = ddb.describe_time_to_live(TableName=res.tables["ConnectionsTable"])["TimeToLiveDescription"]
    assert ttl == {"TimeToLiveStatus": "ENABLED", "AttributeName": "expires_at"}


def test_bucket_object_created_under_prefix_reaches_ingest_queue(res: LocalResources) -> None:
    s3, sqs = boto3.client("s3"), boto3.client("sqs")
    bucket = res.buckets["AudioBucket"]
    assert bucket == res.env["AUDIOMIXER_BUCKET"] == "audiomixer-audio-123456789012"
    block = s3.get_public_access_block(Bucket=bucket)["PublicAccessBlockConfiguration"]
    assert all(block.values())
    rules = s3.get_bucket_lifecycle_configuration(Bucket=bucket)["Rules"]
    assert rules[0]["Expiration"]["Days"] == 2
    s3.put_object(Bucket=bucket, Key="elsewhere/x.wav", Body=b"no event")
    s3.put_object(Bucket=bucket, Key="uploads/dev/base-track/abc", Body=b"RIFF....")
    url = res.queues["IngestQueue"].url
    bodies = [
        json.loads(m["Body"])
        for m in sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=1)["Messages"]
    ]
    # As on AWS, configuring the notification first sends an s3:TestEvent (consumers must skip it).
    assert [b.get("Event") for b in bodies if "Records" not in b] == ["s3:TestEvent"]
    records = [r for b in bodies for r in b.get("Records", [])]
    assert len(records) == 1  # moto itself delivers S3 -> SQS notifications, prefix filter included
    (record,) = records
    assert record["eventName"].startswith("ObjectCreated:")
    assert record["s3"]["bucket"]["name"] == bucket
    # Keys arrive URL-encoded (moto also encodes "/"): consumers must unquote_plus them.
    assert unquote_plus(record["s3"]["object"]["key"]) == "uploads/dev/base-track/abc"


def test_batch_records_and_pepper_parameter(res: LocalResources) -> None:
    batch = boto3.client("batch")
    (queue,) = batch.describe_job_queues(jobQueues=[res.env["AUDIOMIXER_BATCH_JOB_QUEUE"]])["jobQueues"]
    assert queue["jobQueueName"] == "audiomixer-SeparationJobQueue"
    (definition,) = batch.describe_job_definitions(jobDefinitionName="audiomixer-SeparationJobDefinition")[
        "jobDefinitions"
    ]
    assert definition["jobDefinitionArn"] == res.env["AUDIOMIXER_BATCH_JOB_DEFINITION"]
    assert definition["retryStrategy"]["attempts"] == 3
    first_rule = definition["retryStrategy"]["evaluateOnExit"][0]
    assert (first_rule["onStatusReason"], first_rule["action"].upper()) == ("Host EC2*", "RETRY")
    assert definition["containerProperties"]["command"][1] == "/app/gpu_batch/entrypoint.py"
    env = {e["name"]: e["value"] for e in definition["containerProperties"]["environment"]}
    assert env["AUDIOMIXER_BUCKET"] == res.buckets["AudioBucket"]
    ssm = boto3.client("ssm")
    value = ssm.get_parameter(Name=res.env["AUDIOMIXER_API_KEY_PEPPER_PARAMETER"], WithDecryption=True)
    assert value["Parameter"]["Value"]


def test_repository_template_creates_in_moto(aws_env: None) -> None:
    res = create_resources(REPO_TEMPLATE)
    sqs = boto3.client("sqs")
    for name in ("INGEST", "SEPARATE", "ANALYSE", "RENDER"):
        url = res.env[f"AUDIOMIXER_{name}_QUEUE_URL"]
        attrs = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["RedrivePolicy"])["Attributes"]
        assert json.loads(attrs["RedrivePolicy"])["maxReceiveCount"] == 5
    ddb = boto3.client("dynamodb")
    for key in ("PROJECTS", "SOUNDS", "MIXES", "API_KEYS", "CONNECTIONS", "IDEMPOTENCY"):
        ddb.describe_table(TableName=res.env[f"AUDIOMIXER_{key}_TABLE"])
    boto3.client("s3").head_bucket(Bucket=res.env["AUDIOMIXER_BUCKET"])
