"""Template parsing and intrinsic resolution for the local stack (no AWS calls)."""

from __future__ import annotations

from pathlib import Path

import pytest

from audiomixer_local.resources import describe_template
from audiomixer_local.template import Template, UnresolvableError, load, referenced_ids

FIXTURE = Path(__file__).parent / "fixtures" / "local_template.yaml"
REPO_TEMPLATE = Path(__file__).resolve().parents[2] / "template.yaml"


def _template(tmp_path: Path, body: str, **params: str) -> Template:
    path = tmp_path / "t.yaml"
    path.write_text(body)
    return Template.from_file(path, parameters=params)


def test_short_tags_become_long_form(tmp_path: Path) -> None:
    path = tmp_path / "t.yaml"
    path.write_text(
        "Resources:\n  Q:\n    Type: AWS::SQS::Queue\n    Properties:\n"
        "      A: !Ref X\n      B: !GetAtt Q.Arn\n      C: !Sub 'x-${AWS::Region}'\n"
        "      D: !If [Cond, 1, 2]\n      E: !Join ['-', [a, !Ref X]]\n"
    )
    props = load(path)["Resources"]["Q"]["Properties"]
    assert props["A"] == {"Ref": "X"}
    assert props["B"] == {"Fn::GetAtt": ["Q", "Arn"]}
    assert props["C"] == {"Fn::Sub": "x-${AWS::Region}"}
    assert props["D"] == {"Fn::If": ["Cond", 1, 2]}
    assert props["E"] == {"Fn::Join": ["-", ["a", {"Ref": "X"}]]}


def test_intrinsics_resolve_against_parameters_pseudo_and_resources(tmp_path: Path) -> None:
    t = _template(
        tmp_path,
        """
Parameters:
  Stage: {Type: String, Default: prod}
  Origins: {Type: CommaDelimitedList, Default: "a,b"}
  Issuer: {Type: String, Default: ""}
  Image: {Type: String}
Conditions:
  HasIssuer: !Not [!Equals [!Ref Issuer, ""]]
Resources:
  Api: {Type: AWS::ApiGatewayV2::Api}
""",
        Image="repo/img:1",
    )
    t.refs["Api"] = "abc123"
    t.attrs["Api"] = {"ApiEndpoint": "https://abc123.example"}
    assert t.resolve({"Fn::Sub": "https://${Api}.execute-api.${AWS::Region}.amazonaws.com/${Stage}"}) == (
        "https://abc123.execute-api.us-east-1.amazonaws.com/prod"
    )
    assert t.resolve({"Fn::Sub": ["${X}/${Api.ApiEndpoint}", {"X": {"Ref": "Stage"}}]}) == (
        "prod/https://abc123.example"
    )
    assert t.resolve({"Fn::Sub": "${!Literal}"}) == "${Literal}"
    assert t.resolve({"Ref": "Origins"}) == ["a", "b"]
    assert t.resolve({"Ref": "Image"}) == "repo/img:1"
    assert t.resolve({"Fn::If": ["HasIssuer", "yes", {"Ref": "AWS::NoValue"}]}) is None
    assert t.resolve({"k": {"Fn::If": ["HasIssuer", "yes", {"Ref": "AWS::NoValue"}]}, "j": 1}) == {"j": 1}
    assert t.resolve({"Fn::Select": [1, {"Fn::Split": [",", "x,y,z"]}]}) == "y"
    with pytest.raises(UnresolvableError):
        t.resolve({"Ref": "Nope"})
    with pytest.raises(UnresolvableError):
        t.resolve({"Fn::GetAtt": ["Api", "Nope"]})


def test_parameter_without_default_is_empty_and_reported(tmp_path: Path) -> None:
    t = _template(tmp_path, "Parameters:\n  Img: {Type: String}\nResources: {}\n")
    assert t.resolve({"Ref": "Img"}) == ""
    assert t.unset_parameters == ["Img"]


def test_referenced_ids_finds_refs_getatts_and_sub_variables() -> None:
    node = {
        "Fn::Join": [
            "",
            [
                "arn:",
                {"Ref": "AWS::Region"},
                {"Fn::GetAtt": ["F", "Arn"]},
                {"Fn::Sub": "${G.Arn}/${H}/${!I}"},
            ],
        ]
    }
    assert referenced_ids(node) == {"AWS::Region", "F", "G", "H"}


def test_describe_fixture_template() -> None:
    res = describe_template(FIXTURE)
    echo = res.function("EchoFunction")
    assert echo.module_file == FIXTURE.parent / "functions" / "echo" / "app.py"
    assert (echo.handler_attr, echo.timeout_s, echo.memory_mb) == ("handler", 20.0, 256)
    (source,) = echo.sqs_sources
    assert (
        source.queue,
        source.batch_size,
        source.report_batch_item_failures,
        source.maximum_concurrency,
    ) == (
        "EchoQueue",
        5,
        True,
        2,
    )
    assert res.function("echo") is echo  # by code dir name too
    queue_arn = res.batch.job_queues["SeparationJobQueue"][1]
    assert res.function("BatchEventsFunction").event_patterns == [
        {
            "source": ["aws.batch"],
            "detail-type": ["Batch Job State Change"],
            "detail": {"jobQueue": [queue_arn]},
        }
    ]
    assert res.websocket is not None
    assert res.websocket.routes == {
        "$connect": "WsConnectFunction",
        "$disconnect": "WsDisconnectFunction",
        "sync": "WsSyncFunction",
    }
    assert res.websocket.stage == "prod"
    assert res.queues["EchoQueue"].dlq == "EchoDLQ"
    assert res.queues["EchoQueue"].max_receive_count == 3
    assert [q.logical_id for q in res.dead_letter_queues] == ["EchoDLQ", "IngestDLQ"]
    env = res.env
    assert env["AUDIOMIXER_BUCKET"] == "audiomixer-audio-123456789012"
    assert env["AUDIOMIXER_PROJECTS_TABLE"] == "audiomixer-ProjectsTable"
    assert env["AUDIOMIXER_ECHO_QUEUE_ARN"] == "arn:aws:sqs:us-east-1:123456789012:audiomixer-EchoQueue"
    assert env["AUDIOMIXER_WS_ENDPOINT"].endswith(".execute-api.us-east-1.amazonaws.com/prod")
    assert "AUDIOMIXER_JWT_ISSUER" not in env  # !If -> AWS::NoValue drops it


def test_repository_template_resolves_every_resource_variable() -> None:
    from audiomixer.settings import Settings

    res = describe_template(REPO_TEMPLATE)
    resource_fields = [
        "bucket",
        "projects_table",
        "sounds_table",
        "mixes_table",
        "api_keys_table",
        "connections_table",
        "idempotency_table",
        "ingest_queue_url",
        "separate_queue_url",
        "analyse_queue_url",
        "render_queue_url",
        "batch_job_queue",
        "batch_job_definition",
        "ws_endpoint",
    ]
    assert set(resource_fields) <= set(Settings.model_fields)
    for name in resource_fields:
        assert res.env.get(f"AUDIOMIXER_{name.upper()}"), name
    for spec in res.functions.values():
        assert spec.module_file.name == "app.py", spec
        assert spec.module_file.parent.parent.name == "functions", spec
    consumers = {s.queue: f.logical_id for f, s in res.sqs_mappings()}
    work = {"IngestQueue", "SeparateQueue", "AnalyseQueue", "RenderQueue"}
    assert set(consumers) == work | {f"{q.removesuffix('Queue')}DLQ" for q in work} | {"BatchEventsDLQ"}
    for queue_id in work:
        assert res.queues[queue_id].dlq is not None
        assert consumers[res.queues[queue_id].dlq] == "DeadLetterFunction"
    assert consumers["BatchEventsDLQ"] == "DeadLetterFunction"
    assert res.function("BatchEventsFunction").event_dlq == "BatchEventsDLQ"
    assert res.websocket is not None and {"$connect", "$disconnect", "sync"} <= set(res.websocket.routes)
