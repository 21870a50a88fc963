"""The local IAM check (audiomixer_local.iam): which action and resource each call needs, each function's
policies as SAM expands them from template.yaml, the Batch job's task role in its subprocess, and a copy of
the template with one permission removed whose flow then fails locally as it would on AWS."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from audio_helpers import synth_song

from audiomixer_local import iam
from audiomixer_local.resources import LocalResources, describe_template

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = ROOT / "template.yaml"
REGION, ACCOUNT = "us-east-1", "123456789012"


@pytest.fixture(scope="module")
def described() -> LocalResources:
    return describe_template(TEMPLATE, account_id=ACCOUNT, region=REGION)


def test_each_call_maps_to_the_action_and_resource_iam_checks() -> None:
    def needs(service: str, operation: str, **params: Any) -> list[tuple[str, str]]:
        return iam.requirements(service, operation, params, REGION, ACCOUNT)

    assert needs("s3", "HeadObject", Bucket="b", Key="k/1") == [("s3:GetObject", "arn:aws:s3:::b/k/1")]
    assert needs("s3", "ListObjectsV2", Bucket="b", Prefix="k/") == [("s3:ListBucket", "arn:aws:s3:::b")]
    assert needs("s3", "DeleteObjects", Bucket="b", Delete={"Objects": [{"Key": "a"}, {"Key": "c"}]}) == [
        ("s3:DeleteObject", "arn:aws:s3:::b/a"),
        ("s3:DeleteObject", "arn:aws:s3:::b/c"),
    ]
    assert needs("s3", "CopyObject", Bucket="b", Key="dst", CopySource={"Bucket": "s", "Key": "src"}) == [
        ("s3:PutObject", "arn:aws:s3:::b/dst"),
        ("s3:GetObject", "arn:aws:s3:::s/src"),
    ]
    table = f"arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/"
    assert needs("dynamodb", "Query", TableName="t", IndexName="i") == [
        ("dynamodb:Query", table + "t/index/i")
    ]
    assert needs(
        "dynamodb",
        "TransactWriteItems",
        TransactItems=[{"Put": {"TableName": "a"}}, {"ConditionCheck": {"TableName": "b"}}],
    ) == [("dynamodb:PutItem", table + "a"), ("dynamodb:ConditionCheckItem", table + "b")]
    url = f"https://sqs.{REGION}.amazonaws.com/{ACCOUNT}/q1"
    assert needs("sqs", "ChangeMessageVisibilityBatch", QueueUrl=url) == [
        ("sqs:ChangeMessageVisibility", f"arn:aws:sqs:{REGION}:{ACCOUNT}:q1")
    ]
    assert needs("ssm", "GetParameter", Name="/a/b") == [
        ("ssm:GetParameter", f"arn:aws:ssm:{REGION}:{ACCOUNT}:parameter/a/b")
    ]
    assert needs("batch", "TerminateJob", jobId="j1") == [
        ("batch:TerminateJob", f"arn:aws:batch:{REGION}:{ACCOUNT}:job/j1")
    ]
    assert needs("batch", "SubmitJob", jobQueue="q", jobDefinition="d:3") == [
        ("batch:SubmitJob", f"arn:aws:batch:{REGION}:{ACCOUNT}:job-queue/q"),
        ("batch:SubmitJob", f"arn:aws:batch:{REGION}:{ACCOUNT}:job-definition/d:3"),
    ]


def test_statements_evaluate_as_iam_does() -> None:
    allow = iam.Statement("Allow", ("sqs:SendMessage*",), ("arn:aws:sqs:*:*:q?",))
    deny = iam.Statement("Deny", ("sqs:*",), ("arn:aws:sqs:*:*:q2",))
    conditional = iam.Statement("Allow", ("s3:*",), ("*",), conditional=True)
    p = iam.Principal("f", "arn:aws:sts::1:assumed-role/r/f", (allow, deny, conditional))
    assert p.allows("SQS:sendmessagebatch", "arn:aws:sqs:r:1:q1")  # actions are case-insensitive
    assert not p.allows("sqs:SendMessage", "arn:aws:sqs:r:1:q2")  # an explicit Deny wins
    assert not p.allows("sqs:SendMessage", "arn:aws:sqs:r:1:q10")  # ? is one character
    assert not p.allows("s3:GetObject", "arn:aws:s3:::b/k")  # conditions are not evaluated: refused
    assert iam.Principal.from_json(p.to_json()) == p


def test_function_policies_are_what_sam_deploys(described: LocalResources) -> None:
    principals = described.principals
    pepper = described.env["AUDIOMIXER_API_KEY_PEPPER_PARAMETER"]
    param = f"arn:aws:ssm:{REGION}:{ACCOUNT}:parameter{pepper}"
    assert principals["ApiFunction"].allows("ssm:GetParameter", param)
    assert not principals["ApiFunction"].allows("ssm:GetParameter", param + "-other")
    assert not principals["DispatchFunction"].allows("ssm:GetParameter", param)
    # SAM attaches AWSLambdaSQSQueueExecutionRole to a function with an SQS event: receive and delete on
    # any queue, but no ChangeMessageVisibility (a backoff needs its own statement).
    queue = described.queues["SeparateQueue"].arn
    assert principals["ApiFunction"].allows("sqs:SendMessage", described.queues["IngestQueue"].arn)
    assert not principals["ApiFunction"].allows("sqs:SendMessage", queue)
    for action in ("sqs:ReceiveMessage", "sqs:DeleteMessage"):
        assert principals["DispatchFunction"].allows(action, queue)
        assert not principals["ApiFunction"].allows(action, queue)
    table = f"arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/{described.tables['SoundsTable']}"
    assert principals["RenderFunction"].allows("dynamodb:GetItem", table)
    assert not principals["RenderFunction"].allows("dynamodb:PutItem", table)  # DynamoDBReadPolicy
    job_role = described.job_principal(described.batch.job_definitions["SeparationJobDefinition"][0])
    assert job_role is principals["SeparationJobRole"]
    assert job_role.allows("sqs:SendMessage", described.queues["AnalyseQueue"].arn)
    assert not job_role.allows("sqs:SendMessage", described.queues["RenderQueue"].arn)


def test_the_batch_job_subprocess_runs_as_its_task_role(described: LocalResources) -> None:
    """`python` in a local job is audiomixer_local.task: every call in the process is checked."""
    role = described.principals["SeparationJobRole"]
    code = (
        "import boto3, sys\n"
        "ddb = boto3.client('dynamodb', endpoint_url='http://127.0.0.1:9')\n"
        "try:\n"
        "    ddb.get_item(TableName=sys.argv[1], Key={'k': {'S': 'v'}})\n"
        "except ddb.exceptions.ClientError as exc:\n"
        "    print(exc.response['Error']['Code'], exc.response['Error']['Message'])\n"
    )
    env = {**os.environ, iam.TASK_ROLE_ENV: role.to_json(), "AWS_DEFAULT_REGION": REGION}
    run = subprocess.run(
        [sys.executable, "-m", "audiomixer_local.task", "-c", code, described.tables["SoundsTable"]],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert run.returncode == 0, run.stderr
    # Refused before any request (the endpoint is a closed port): the job role cannot read sounds.
    assert run.stdout.startswith("AccessDeniedException User: " + role.arn), run.stdout


@pytest.fixture
def stack_without_submit(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """The local stack on a copy of template.yaml whose DispatchFunction lost batch:SubmitJob."""
    from moto.moto_api._internal.models import moto_api_backend

    from audiomixer_local.stack import LocalStack, StackConfig

    folder = tmp_path_factory.mktemp("template-copy")
    for name in ("functions", "gpu_batch", "layers"):
        (folder / name).symlink_to(ROOT / name)
    text = TEMPLATE.read_text()
    granted = "              Action: batch:SubmitJob\n"
    assert text.count(granted) == 1
    (folder / "template.yaml").write_text(text.replace(granted, "              Action: batch:ListJobs\n"))
    moto_api_backend.reset()
    stack = LocalStack(
        StackConfig(
            template=folder / "template.yaml",
            port=0,
            data_dir=folder / ".audiomixer",
            demucs_model="demucs_unittest",
        )
    )
    try:
        yield stack.start()
    finally:
        stack.stop()
        moto_api_backend.reset()


@pytest.mark.timeout(180)
def test_a_permission_removed_from_the_template_fails_the_flow_locally(stack_without_submit: Any) -> None:
    stack = stack_without_submit
    with httpx.Client(
        base_url=stack.local_url, headers={"Authorization": f"Bearer {stack.dev_api_key}"}, timeout=30
    ) as client:
        response = client.post(
            "/api/v1/upload/base-track",
            files={"file": ("song.wav", synth_song(2.0, sr=11025), "audio/wav")},
            data={"project_name": "no submit"},
        )
        assert response.status_code == 202, response.text
        dispatch = next(p for p in stack.pollers if p.function.logical_id == "DispatchFunction")
        deadline = time.monotonic() + 120
        while not dispatch.stats.as_dict()["last_error"]:
            assert time.monotonic() < deadline, "dispatch never ran"
            time.sleep(0.1)
        status = client.get(f"/api/v1/projects/{response.json()['project_id']}/status").json()["status"]
    error = dispatch.stats.as_dict()["last_error"]
    assert "AccessDeniedException" in error and "batch:SubmitJob" in error, error
    assert status == "queued"  # no job was submitted
    assert stack.batch.jobs_summary() == []
