"""The local stack's saved state through moto: rows and objects go out and come back exactly; saving
is incremental; raw uploads and WebSocket connections are not kept; jobs left mid-way end `failed`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws

from audiomixer_local.persistence import SKIPPED_PREFIXES, StateStore, end_interrupted_jobs

TEMPLATE = Path(__file__).resolve().parents[2] / "template.yaml"


def _store(res: Any, folder: Path) -> StateStore:
    return StateStore(folder, res.tables, res.buckets, region=res.region, endpoint_url=None)


def _fill(res: Any) -> dict[str, Any]:
    ddb = boto3.client("dynamodb", region_name=res.region)
    s3 = boto3.client("s3", region_name=res.region)
    bucket = res.buckets["AudioBucket"]
    projects = res.tables["ProjectsTable"]
    item = {
        "tenant_id": {"S": "t1"},
        "project_id": {"S": "0" * 32},
        "name": {"S": "kept \u00fcn\u00efcode \u2013 \U0001f3b5"},
        "status": {"S": "ready"},
        "size_bytes": {"N": "1234"},
        "blob": {"B": b"\x00\xffbinary"},
        "stems": {"M": {"drums": {"BOOL": True}}},
    }
    ddb.put_item(TableName=projects, Item=item)
    connection = {"connection_id": {"S": "c1"}}
    key_schema = ddb.describe_table(TableName=res.tables["ConnectionsTable"])["Table"]["KeySchema"]
    for k in key_schema:
        connection.setdefault(k["AttributeName"], {"S": "c1"})
    ddb.put_item(TableName=res.tables["ConnectionsTable"], Item=connection)
    s3.put_object(
        Bucket=bucket, Key="t1/projects/p/stems/drums.flac", Body=b"fLaC" * 1000, ContentType="audio/flac"
    )
    s3.put_object(Bucket=bucket, Key="uploads/base-track/t1/p", Body=b"raw upload")
    return {"item": item, "bucket": bucket, "projects": projects}


def test_saved_state_comes_back_exactly(tmp_path: Path) -> None:
    from audiomixer_local.resources import create_resources

    with mock_aws():
        res = create_resources(TEMPLATE)
        filled = _fill(res)
        _store(res, tmp_path).save()
    saved = (tmp_path / "dynamodb" / "ProjectsTable.jsonl").read_text()
    assert "__b64__" in saved and not (tmp_path / "dynamodb" / "ConnectionsTable.jsonl").exists()

    with mock_aws():  # a new, empty moto: the next start
        res = create_resources(TEMPLATE)
        restored = _store(res, tmp_path).restore()
        ddb = boto3.client("dynamodb", region_name=res.region)
        s3 = boto3.client("s3", region_name=res.region)
        got = ddb.get_item(
            TableName=filled["projects"], Key={"tenant_id": {"S": "t1"}, "project_id": {"S": "0" * 32}}
        )
        assert got["Item"] == filled["item"]
        obj = s3.get_object(Bucket=filled["bucket"], Key="t1/projects/p/stems/drums.flac")
        assert obj["Body"].read() == b"fLaC" * 1000 and obj["ContentType"] == "audio/flac"
        # Raw uploads would re-run ingest through their S3 events: not kept.
        assert s3.list_objects_v2(Bucket=filled["bucket"], Prefix=SKIPPED_PREFIXES[0]).get("KeyCount", 0) == 0
        assert restored.items[filled["projects"]] == 1 and restored.objects == 1


def test_saving_is_incremental_and_follows_deletes(tmp_path: Path) -> None:
    from audiomixer_local.resources import create_resources

    with mock_aws():
        res = create_resources(TEMPLATE)
        filled = _fill(res)
        store = _store(res, tmp_path)
        store.save()
        saved = tmp_path / "s3" / "AudioBucket" / "t1/projects/p/stems/drums.flac"
        first = saved.stat().st_mtime_ns
        store.save()
        assert saved.stat().st_mtime_ns == first  # unchanged object: not downloaded again
        s3 = boto3.client("s3", region_name=res.region)
        s3.delete_object(Bucket=filled["bucket"], Key="t1/projects/p/stems/drums.flac")
        store.save()
        assert not saved.exists()
        assert json.loads((tmp_path / "s3" / "AudioBucket.index.json").read_text()) == {}


def test_refuses_keys_that_leave_the_state_folder(tmp_path: Path) -> None:
    store = StateStore(tmp_path, {}, {"AudioBucket": "b"}, region="us-east-1", endpoint_url=None)
    with pytest.raises(ValueError, match="leaves the state folder"):
        store._object_path("AudioBucket", "../../etc/passwd")


def test_jobs_left_mid_way_end_failed_with_a_reason(aws: Any) -> None:
    from audiomixer.store.models import Mix, Project, Sound

    rows = [
        Project("t1", "1" * 32, name="a", status="separating", stage="separate"),
        Project("t1", "2" * 32, name="b", status="ready", stage="ready"),
        Sound("t1", "3" * 32, name="s", status="analysing", stage="analyse"),
        Mix("t1", "4" * 32, project_id="2" * 32, status="rendering", stage="render", output_format="wav"),
        Mix("t1", "5" * 32, project_id="2" * 32, status="completed", stage="render", output_format="wav"),
    ]
    for row in rows:
        row.save()
    ended = end_interrupted_jobs()
    assert sorted(ended) == sorted([f"project {'1' * 32}", f"sound {'3' * 32}", f"mix {'4' * 32}"])
    separating = Project.get("t1", "1" * 32)
    assert separating.status == "failed"
    assert separating.failure_reason == "the local service stopped while this was separating; start it again"
    assert Project.get("t1", "2" * 32).status == "ready"
    assert Mix.get("t1", "5" * 32).status == "completed"
    assert end_interrupted_jobs() == []  # a second start finds nothing left
