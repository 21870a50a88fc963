"""template.yaml against the resource contract (notes/resources.md): queues, event sources, functions,
layers, tables, bucket, Batch, alarms, environment. Plus the real SAM transform, `sam validate --lint`
and the JSON events in tests/events/ against powertools' models of what AWS sends."""

from __future__ import annotations

import copy
import json
import os
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest
from cfnlint.decode import decode_str
from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE_PATH = ROOT / "template.yaml"
EVENTS = ROOT / "tests" / "events"


def _load() -> dict[str, Any]:
    template, matches = decode_str(TEMPLATE_PATH.read_text(encoding="utf-8"))
    assert not matches, matches
    # cfn-lint's node types subclass dict/list/str; plain JSON types keep comparisons simple.
    return json.loads(json.dumps(template, default=str))


TEMPLATE = _load()
RESOURCES: dict[str, dict[str, Any]] = TEMPLATE["Resources"]
GLOBALS_FN: dict[str, Any] = TEMPLATE.get("Globals", {}).get("Function", {})

# logical id -> (code dir, timeout s, zip?) from resources.md
FUNCTIONS: dict[str, tuple[str, int, bool]] = {
    "ApiFunction": ("api", 29, True),
    "WsConnectFunction": ("ws_connect", 10, True),
    "WsDisconnectFunction": ("ws_disconnect", 10, True),
    "WsSyncFunction": ("ws_sync", 10, True),
    "IngestFunction": ("ingest", 300, False),
    "DispatchFunction": ("dispatch", 60, True),
    "AnalyseFunction": ("analyse", 600, False),
    "RenderFunction": ("render", 900, False),
    "BatchEventsFunction": ("batch_events", 60, True),
    "SweepFunction": ("sweep", 300, True),
    "DeadLetterFunction": ("dead_letter", 30, True),
}
# queue -> (consumer, batch size)
QUEUES: dict[str, tuple[str, int]] = {
    "IngestQueue": ("IngestFunction", 5),
    "SeparateQueue": ("DispatchFunction", 10),
    "AnalyseQueue": ("AnalyseFunction", 1),
    "RenderQueue": ("RenderFunction", 1),
    # Dead letters of the four stages: their job ends `failed` (DeadLetterFunction).
    "IngestDLQ": ("DeadLetterFunction", 10),
    "SeparateDLQ": ("DeadLetterFunction", 10),
    "AnalyseDLQ": ("DeadLetterFunction", 10),
    "RenderDLQ": ("DeadLetterFunction", 10),
    # Batch state changes BatchEventsFunction failed on every try: a FAILED job's project ends `failed`.
    "BatchEventsDLQ": ("DeadLetterFunction", 10),
}
HEAVY_PACKAGES = {
    "numpy",
    "scipy",
    "librosa",
    "numba",
    "llvmlite",
    "torch",
    "soundfile",
    "demucs",
    "pyloudnorm",
}


def of_type(kind: str) -> dict[str, dict[str, Any]]:
    return {k: v for k, v in RESOURCES.items() if v["Type"] == kind}


def props(logical_id: str) -> dict[str, Any]:
    return dict(RESOURCES[logical_id].get("Properties", {}))


def getatt(node: Any) -> tuple[str, str] | None:
    if isinstance(node, dict) and "Fn::GetAtt" in node:
        value = node["Fn::GetAtt"]
        parts = value.split(".", 1) if isinstance(value, str) else value
        return str(parts[0]), str(parts[1])
    return None


def sqs_events() -> list[tuple[str, str, dict[str, Any]]]:
    """(function, queue, event properties) for every SQS event source."""
    found = []
    for fn, res in of_type("AWS::Serverless::Function").items():
        for event in res["Properties"].get("Events", {}).values():
            if event["Type"] == "SQS":
                ref = getatt(event["Properties"]["Queue"])
                assert ref and ref[1] == "Arn", f"{fn}: SQS event must use !GetAtt Queue.Arn"
                found.append((fn, ref[0], event["Properties"]))
    return found


def function_timeout(fn: str) -> int:
    return int(props(fn).get("Timeout", GLOBALS_FN.get("Timeout", 3)))


def policy_statements(fn: str) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for policy in props(fn).get("Policies", []):
        if isinstance(policy, dict) and "Statement" in policy:
            out.extend(policy["Statement"])
    return out


def policy_templates(fn: str, name: str) -> list[Any]:
    return [p[name] for p in props(fn).get("Policies", []) if isinstance(p, dict) and name in p]


# ------------------------------------------------------------------------------------------- queues
def test_every_consumed_queue_has_a_dlq_that_has_none() -> None:
    queues = of_type("AWS::SQS::Queue")
    targets = {
        ref[0]
        for res in queues.values()
        if (ref := getatt((res.get("Properties", {}).get("RedrivePolicy") or {}).get("deadLetterTargetArn")))
    }
    # Where EventBridge and Lambda put the events a function failed on every try: DLQs too.
    for fn in of_type("AWS::Serverless::Function"):
        on_failure = ((props(fn).get("EventInvokeConfig") or {}).get("DestinationConfig") or {}).get(
            "OnFailure"
        )
        dlqs = [(on_failure or {}).get("Destination")] + [
            (ev.get("Properties", {}).get("DeadLetterConfig") or {}).get("Arn")
            for ev in (props(fn).get("Events") or {}).values()
        ]
        targets |= {ref[0] for node in dlqs if (ref := getatt(node))}
    consumed = {queue for _fn, queue, _ in sqs_events()} - targets  # work queues (DLQs may be consumed too)
    assert consumed, "no SQS event sources found"
    for queue in consumed:
        redrive = props(queue).get("RedrivePolicy")
        assert redrive, f"{queue} has no RedrivePolicy: a poison message would be retried forever"
        target = getatt(redrive["deadLetterTargetArn"])
        assert target and target[0] in queues, f"{queue}: dead-letter target {target} is not a queue"
        assert target[0] not in consumed, f"{queue}: its DLQ {target[0]} is itself a work queue"
        assert "RedrivePolicy" not in props(target[0]), f"{target[0]}: a DLQ has no DLQ of its own"


def test_handlers_read_the_max_receive_count_the_queues_use() -> None:
    """The handlers tell the last delivery by AUDIOMIXER_MAX_RECEIVE_COUNT: it must be the very value
    (the same reference) every RedrivePolicy uses, or a job could sit in a DLQ without a failure."""
    from audiomixer.settings import ENV_PREFIX, Settings

    env = GLOBALS_FN["Environment"]["Variables"]
    name = ENV_PREFIX + "max_receive_count"
    assert "max_receive_count" in Settings.model_fields
    value = env[name.upper()]
    for queue, res in of_type("AWS::SQS::Queue").items():
        redrive = res.get("Properties", {}).get("RedrivePolicy")
        if redrive:
            assert redrive["maxReceiveCount"] == value, f"{queue}: {redrive['maxReceiveCount']} != {value}"


def test_dlqs_keep_messages_14_days() -> None:
    for name, res in of_type("AWS::SQS::Queue").items():
        if name.endswith("DLQ"):
            assert int(res["Properties"]["MessageRetentionPeriod"]) == 14 * 24 * 3600, name


def test_visibility_timeout_is_six_times_consumer_timeout() -> None:
    """AWS's guidance for SQS event sources: a message must not reappear while a consumer may still be
    working on it (and its retries)."""
    for fn, queue, _ in sqs_events():
        visibility = int(props(queue).get("VisibilityTimeout", 30))
        assert visibility >= 6 * function_timeout(fn), f"{queue}: {visibility} s < 6 x {fn}'s timeout"


def test_sqs_event_sources_report_partial_failures_with_contract_batch_sizes() -> None:
    events = sqs_events()
    assert len(events) == len(QUEUES)
    for fn, queue, ev in events:
        assert QUEUES[queue][0] == fn, f"{queue} consumed by {fn}"
        assert ev.get("FunctionResponseTypes") == ["ReportBatchItemFailures"], fn
        assert int(ev["BatchSize"]) == QUEUES[queue][1], fn
        assert int(ev.get("MaximumBatchingWindowInSeconds", 0)) == 0
        concurrency = ev.get("ScalingConfig", {}).get("MaximumConcurrency")
        assert concurrency is None or int(concurrency) >= 2


def test_every_dlq_has_an_alarm_on_visible_messages() -> None:
    alarmed = set()
    for res in of_type("AWS::CloudWatch::Alarm").values():
        p = res["Properties"]
        if p.get("Namespace") != "AWS/SQS":
            continue
        # A consumed DLQ is empty within seconds: its alarm counts what arrives instead of what waits.
        consumed = any(getatt(d["Value"]) and getatt(d["Value"])[0] in QUEUES for d in p["Dimensions"])
        assert p["MetricName"] == (
            "NumberOfMessagesReceived" if consumed else "ApproximateNumberOfMessagesVisible"
        )
        assert p["ComparisonOperator"] == "GreaterThanThreshold" and float(p["Threshold"]) == 0
        assert p.get("AlarmActions"), "an alarm nobody hears is no alarm"
        for dim in p["Dimensions"]:
            ref = getatt(dim["Value"])
            if dim["Name"] == "QueueName" and ref and ref[1] == "QueueName":
                alarmed.add(ref[0])
    dlqs = {name for name in of_type("AWS::SQS::Queue") if name.endswith("DLQ")}
    assert dlqs and dlqs <= alarmed, dlqs - alarmed


# ---------------------------------------------------------------------------------------- functions
def test_audio_functions_have_the_memory_their_worst_case_needs() -> None:
    from audiomixer.settings import Settings

    settings = Settings()
    # Ingest: the float32 decode plus a downmixed and a resampled working copy, plus the runtime.
    assert 3 * settings.max_decoded_mb + 512 <= int(props("IngestFunction")["MemorySize"])
    # Render: four stems, four re-rendered stems and the mix of the longest song in float32 stereo, each
    # with a working copy, plus the grain tables and the runtime.
    song_mb = settings.max_duration_s * settings.target_sample_rate * 2 * 4 / 2**20
    assert 9 * song_mb * 2 + 1024 <= int(props("RenderFunction")["MemorySize"])


def test_every_handler_directory_is_one_function_and_timeouts_fit_their_callers() -> None:
    functions = of_type("AWS::Serverless::Function")
    code_dirs = [
        (p.get("CodeUri") or p["ImageConfig"]["Command"][0].rsplit("/", 1)[0]).rstrip("/").split("/")[-1]
        for p in (res["Properties"] for res in functions.values())
    ]
    on_disk = sorted(d.name for d in (ROOT / "functions").iterdir() if (d / "app.py").is_file())
    assert sorted(code_dirs) == on_disk, "each functions/<name>/app.py is deployed once, and nothing else"
    # API Gateway gives up on an integration after 29 s (HTTP and WebSocket alike): a longer timeout
    # would let a request run on after its caller got a 504.
    for fn, res in functions.items():
        routed = [e for e in res["Properties"].get("Events", {}).values() if e["Type"] in ("HttpApi", "Api")]
        permissions = [
            p
            for p in of_type("AWS::Lambda::Permission").values()
            if _ref_id(p["Properties"]["FunctionName"]) == fn
            and p["Properties"]["Principal"] == "apigateway.amazonaws.com"
        ]
        if routed or permissions:
            assert function_timeout(fn) <= 29, (
                f"{fn} answers API Gateway yet may run {function_timeout(fn)} s"
            )
        assert function_timeout(fn) <= 900, f"{fn}: Lambda stops every function at 900 s"
    assert GLOBALS_FN.get("Tracing") == "Active"


def _ref_id(node: Any) -> str | None:
    if isinstance(node, dict) and "Ref" in node:
        return str(node["Ref"])
    ref = getatt(node)
    return ref[0] if ref else None


@pytest.mark.parametrize("fn", [f for f, spec in FUNCTIONS.items() if spec[2]])
def test_zip_function_code_and_handler(fn: str) -> None:
    p = props(fn)
    code_dir, _, _ = FUNCTIONS[fn]
    assert p["CodeUri"].rstrip("/") == f"functions/{code_dir}"
    assert p["Handler"] == "app.handler"
    assert p["Runtime"] == "python3.11"
    assert p.get("PackageType", "Zip") == "Zip"
    app = ROOT / "functions" / code_dir / "app.py"
    # Written by the engineers who own the handlers; this fails until it lands.
    assert app.is_file(), f"{app} missing"
    assert re.search(r"^def handler\(|^handler\s*=|^\s*def handler\(", app.read_text(), re.M), app


@pytest.mark.parametrize("fn", [f for f, spec in FUNCTIONS.items() if not spec[2]])
def test_audio_functions_are_container_images(fn: str) -> None:
    res = RESOURCES[fn]
    p, meta = res["Properties"], res.get("Metadata", {})
    code_dir = FUNCTIONS[fn][0]
    assert p["PackageType"] == "Image"
    assert not {"Runtime", "Handler", "Layers", "CodeUri"} & set(p), "SAM rejects these on Image functions"
    assert p["ImageConfig"]["Command"] == [f"functions/{code_dir}/app.handler"]
    assert meta["DockerContext"] == "."
    assert (ROOT / meta["Dockerfile"]).is_file()
    assert meta["DockerBuildArgs"]["FUNCTION"] == code_dir
    assert meta["DockerTag"]
    assert (ROOT / "functions" / code_dir / "app.py").is_file(), f"functions/{code_dir}/app.py missing"


def test_light_functions_use_exactly_the_two_layers() -> None:
    for fn, (_, _, is_zip) in FUNCTIONS.items():
        if is_zip:
            # The API function also carries the web console's static files.
            console = [{"Ref": "ConsoleLayer"}] if fn == "ApiFunction" else []
            assert props(fn)["Layers"] == [{"Ref": "SharedLayer"}, {"Ref": "CoreDepsLayer"}, *console], fn
    for layer in ("SharedLayer", "CoreDepsLayer"):
        assert RESOURCES[layer]["Type"] == "AWS::Serverless::LayerVersion"
        assert props(layer)["CompatibleRuntimes"] == ["python3.11"]
    # Both ship with their bytecode (/opt is read-only: Lambda cannot cache what it compiles), built by
    # the Makefile in each layer's folder.
    for layer, folder in (("SharedLayer", "shared"), ("CoreDepsLayer", "core_deps")):
        assert RESOURCES[layer]["Metadata"]["BuildMethod"] == "makefile"
        makefile = (ROOT / "layers" / folder / "Makefile").read_text()
        assert f"build-{layer}:" in makefile and "--invalidation-mode unchecked-hash" in makefile
    # The dependencies' wheels are those of the layer's runtime and architecture, whatever builds them.
    (runtime,) = props("CoreDepsLayer")["CompatibleRuntimes"]
    (arch,) = props("CoreDepsLayer")["CompatibleArchitectures"]
    pip = (ROOT / "layers" / "core_deps" / "Makefile").read_text()
    assert f"--python-version {runtime.removeprefix('python')}" in pip and f"_{arch} " in pip
    assert "--only-binary=:all:" in pip and "-r requirements.txt" in pip
    assert props("SharedLayer")["ContentUri"].rstrip("/") == "layers/shared"
    assert (ROOT / "layers" / "shared" / "audiomixer" / "__init__.py").is_file()
    assert props("CoreDepsLayer")["ContentUri"].rstrip("/") == "layers/core_deps"
    assert props("ConsoleLayer")["ContentUri"].rstrip("/") == "web"
    # A layer unpacks under /opt: the API serves the console from where its files land.
    assert props("ApiFunction")["Environment"]["Variables"]["AUDIOMIXER_WEB_DIR"] == "/opt/console"
    assert (ROOT / "web" / "console" / "index.html").is_file()


def _requirements(path: Path) -> list[Requirement]:
    lines = (ln.split("#", 1)[0].strip() for ln in path.read_text().splitlines())
    return [Requirement(ln) for ln in lines if ln]


def test_api_layers_carry_no_audio_stack() -> None:
    for layer in ("SharedLayer", "CoreDepsLayer"):
        reqs = _requirements(ROOT / props(layer)["ContentUri"] / "requirements.txt")
        names = {r.name.lower().replace("_", "-") for r in reqs}
        assert not names & HEAVY_PACKAGES, f"{layer}: {names & HEAVY_PACKAGES}"


def test_core_deps_pins_agree_with_pyproject() -> None:
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    declared = {
        Requirement(r).name.lower(): Requirement(r)
        for r in pyproject["dependencies"] + pyproject["optional-dependencies"]["api"]
    }
    reqs = {r.name.lower(): r for r in _requirements(ROOT / "layers" / "core_deps" / "requirements.txt")}
    for name in ("fastapi", "mangum", "pydantic", "pynamodb", "python-multipart"):
        assert name in reqs, f"{name} missing from the core deps layer"
    assert "aws-lambda-powertools" in reqs and "tracer" in reqs["aws-lambda-powertools"].extras
    for name, req in reqs.items():
        pins = [s for s in req.specifier if s.operator == "=="]
        assert len(pins) == 1, f"{name}: pin an exact version in a layer"
        if name in declared:
            assert declared[name].specifier.contains(pins[0].version), f"{name} {pins[0]} vs pyproject"


def test_globals_environment_is_the_contract() -> None:
    env = GLOBALS_FN["Environment"]["Variables"]
    expected_refs = {
        "AUDIOMIXER_BUCKET": "AudioBucket",
        "AUDIOMIXER_PROJECTS_TABLE": "ProjectsTable",
        "AUDIOMIXER_SOUNDS_TABLE": "SoundsTable",
        "AUDIOMIXER_MIXES_TABLE": "MixesTable",
        "AUDIOMIXER_API_KEYS_TABLE": "ApiKeysTable",
        "AUDIOMIXER_CONNECTIONS_TABLE": "ConnectionsTable",
        "AUDIOMIXER_IDEMPOTENCY_TABLE": "IdempotencyTable",
        "AUDIOMIXER_USAGE_TABLE": "UsageTable",
        "AUDIOMIXER_INGEST_QUEUE_URL": "IngestQueue",
        "AUDIOMIXER_SEPARATE_QUEUE_URL": "SeparateQueue",
        "AUDIOMIXER_ANALYSE_QUEUE_URL": "AnalyseQueue",
        "AUDIOMIXER_RENDER_QUEUE_URL": "RenderQueue",
        "AUDIOMIXER_BATCH_JOB_QUEUE": "SeparationJobQueue",
        "AUDIOMIXER_BATCH_JOB_DEFINITION": "SeparationJobDefinition",
        "AUDIOMIXER_API_KEY_PEPPER_PARAMETER": "ApiKeyPepperParameterName",
        "AUDIOMIXER_CORS_ALLOW_ORIGINS": "CorsAllowOrigins",
        "AUDIOMIXER_JWT_ISSUER": "JwtIssuer",
        "AUDIOMIXER_JWT_TENANT_CLAIM": "JwtTenantClaim",
        "AUDIOMIXER_MAX_RECEIVE_COUNT": "MaxReceiveCount",
    }
    for name, target in expected_refs.items():
        assert env[name] == {"Ref": target}, name
    assert env["AUDIOMIXER_WS_ENDPOINT"] == {
        "Fn::Sub": "https://${WebSocketApi}.execute-api.${AWS::Region}.amazonaws.com/${WebSocketStageName}"
    }
    assert env["POWERTOOLS_SERVICE_NAME"] == "audiomixer"
    assert env["POWERTOOLS_METRICS_NAMESPACE"] == "AudioMixer"
    assert env["LOG_LEVEL"] == "INFO"
    assert env["AUDIOMIXER_JWT_AUDIENCE"] == {"Fn::Join": [",", {"Ref": "JwtAudience"}]}
    assert set(env) == set(expected_refs) | {
        "AUDIOMIXER_JWT_AUDIENCE",
        "AUDIOMIXER_WS_ENDPOINT",
        "POWERTOOLS_SERVICE_NAME",
        "POWERTOOLS_METRICS_NAMESPACE",
        "LOG_LEVEL",
    }
    params = TEMPLATE["Parameters"]
    assert params["WebSocketStageName"]["Default"] == "prod"
    origins = json.loads(params["CorsAllowOrigins"]["Default"])
    assert origins == params["CorsAllowOriginList"]["Default"].split(","), "the two CORS lists must agree"


def test_every_function_can_post_progress_except_disconnect_and_connect() -> None:
    for fn in FUNCTIONS:
        manage = [s for s in policy_statements(fn) if s.get("Action") == "execute-api:ManageConnections"]
        if fn in {"WsConnectFunction", "WsDisconnectFunction", "ApiFunction"}:
            assert not manage, fn
            continue
        assert manage, f"{fn} cannot post to @connections"
        for statement in manage:
            assert "${WebSocketApi}/${WebSocketStageName}/" in statement["Resource"]["Fn::Sub"]


def test_policies_are_scoped_to_the_resources_each_function_touches() -> None:
    crud = {
        fn: {t["TableName"]["Ref"] for t in policy_templates(fn, "DynamoDBCrudPolicy")} for fn in FUNCTIONS
    }
    assert crud["WsDisconnectFunction"] == {"ConnectionsTable"}
    assert "ApiKeysTable" not in set().union(*crud.values()), "API keys are read-only to functions"
    assert "ConnectionsTable" not in crud["ApiFunction"]
    # dispatch may submit only to our queue + definition
    submit = [s for s in policy_statements("DispatchFunction") if s.get("Action") == "batch:SubmitJob"]
    assert submit and submit[0]["Resource"] == [
        {"Ref": "SeparationJobQueue"},
        {"Ref": "SeparationJobDefinition"},
    ]
    for fn in FUNCTIONS:
        if fn != "DispatchFunction":
            assert not any("batch:SubmitJob" in json.dumps(s) for s in policy_statements(fn)), fn
    pepper = [s for s in policy_statements("ApiFunction") if s.get("Action") == "ssm:GetParameter"]
    assert pepper and "${ApiKeyPepperParameterName}" in pepper[0]["Resource"]["Fn::Sub"]
    for fn in FUNCTIONS:
        for statement in policy_statements(fn):
            if statement.get("Resource") == "*":
                actions = (
                    statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
                )
                assert set(actions) <= {"batch:DescribeJobs", "batch:ListJobs"}, (fn, actions)
    senders = {
        fn: {q["QueueName"]["Fn::GetAtt"][0] for q in policy_templates(fn, "SQSSendMessagePolicy")}
        for fn in FUNCTIONS
    }
    assert senders["IngestFunction"] == {"SeparateQueue", "AnalyseQueue"}
    assert "IngestQueue" not in set().union(*(v for k, v in senders.items() if k != "ApiFunction"))


# ------------------------------------------------------------------------------- storage and tables
TABLES = {
    "ProjectsTable": [("tenant_id", "HASH"), ("project_id", "RANGE")],
    "SoundsTable": [("tenant_id", "HASH"), ("sound_id", "RANGE")],
    "MixesTable": [("tenant_id", "HASH"), ("mix_id", "RANGE")],
    "ApiKeysTable": [("key_hash", "HASH")],
    "ConnectionsTable": [("connection_id", "HASH")],
    "IdempotencyTable": [("id", "HASH")],
    "UsageTable": [("usage_key", "HASH")],
}


def test_tables_on_demand_with_pitr_sse_and_contract_keys() -> None:
    assert set(of_type("AWS::DynamoDB::Table")) == set(TABLES)
    for name, keys in TABLES.items():
        p = props(name)
        assert p["BillingMode"] == "PAY_PER_REQUEST", name
        assert p["PointInTimeRecoverySpecification"]["PointInTimeRecoveryEnabled"] is True, name
        assert p["SSESpecification"]["SSEEnabled"] is True, name
        assert "TableName" not in p, "local naming is {StackName}-{LogicalId}"
        assert [(k["AttributeName"], k["KeyType"]) for k in p["KeySchema"]] == keys, name
        types = {a["AttributeName"]: a["AttributeType"] for a in p["AttributeDefinitions"]}
        assert all(types[k] == "S" for k, _ in keys)
    gsi = {
        name: {g["IndexName"]: g for g in props(name).get("GlobalSecondaryIndexes", [])} for name in TABLES
    }
    content = gsi["ProjectsTable"]["content_hash_index"]
    assert content["KeySchema"] == [{"AttributeName": "tenant_content_hash", "KeyType": "HASH"}]
    assert content["Projection"]["ProjectionType"] == "KEYS_ONLY"
    subs = gsi["ConnectionsTable"]["subscription_index"]
    assert subs["KeySchema"] == [{"AttributeName": "subscription", "KeyType": "HASH"}]
    assert subs["Projection"]["ProjectionType"] == "ALL"
    ttl = {n: props(n).get("TimeToLiveSpecification") for n in TABLES}
    assert ttl["ConnectionsTable"] == {"AttributeName": "expires_at", "Enabled": True}
    assert ttl["IdempotencyTable"] == {"AttributeName": "expiration", "Enabled": True}


def test_bucket_private_encrypted_with_lifecycle_and_ingest_notification() -> None:
    p = props("AudioBucket")
    assert "BucketName" not in p  # generated by CloudFormation: valid whatever the stack name
    assert all(v is True for v in p["PublicAccessBlockConfiguration"].values())
    assert len(p["PublicAccessBlockConfiguration"]) == 4
    sse = p["BucketEncryption"]["ServerSideEncryptionConfiguration"][0]["ServerSideEncryptionByDefault"]
    assert sse["SSEAlgorithm"] in {"AES256", "aws:kms"}
    rules = p["LifecycleConfiguration"]["Rules"]
    assert any(r.get("Prefix") == "uploads/" and int(r["ExpirationInDays"]) == 2 for r in rules)
    assert any(
        int(r.get("AbortIncompleteMultipartUpload", {}).get("DaysAfterInitiation", 0)) == 1 for r in rules
    )
    assert "POST" in p["CorsConfiguration"]["CorsRules"][0]["AllowedMethods"]
    (qc,) = p["NotificationConfiguration"]["QueueConfigurations"]
    assert qc["Event"] == "s3:ObjectCreated:*"
    assert getatt(qc["Queue"]) == ("IngestQueue", "Arn")
    assert qc["Filter"]["S3Key"]["Rules"] == [{"Name": "prefix", "Value": "uploads/"}]
    # S3 must be allowed to send before it accepts the notification configuration
    policy = props("IngestQueuePolicy")
    assert policy["Queues"] == [{"Ref": "IngestQueue"}]
    (statement,) = policy["PolicyDocument"]["Statement"]
    assert statement["Principal"] == {"Service": "s3.amazonaws.com"}
    assert "aws:SourceArn" in json.dumps(statement["Condition"])
    assert RESOURCES["AudioBucket"]["DependsOn"] in ("IngestQueuePolicy", ["IngestQueuePolicy"])


# --------------------------------------------------------------------------------------------- Batch
def test_gpu_fleet_falls_back_to_on_demand_and_a_job_cannot_wait_forever() -> None:
    queue = props("SeparationJobQueue")
    order = sorted(queue["ComputeEnvironmentOrder"], key=lambda o: int(o["Order"]))
    kinds = [props(o["ComputeEnvironment"]["Ref"])["ComputeResources"]["Type"] for o in order]
    assert kinds == ["SPOT", "EC2"]  # Spot first, On-Demand when Spot is full
    (limit,) = queue["JobStateTimeLimitActions"]
    assert (limit["State"], limit["Action"]) == ("RUNNABLE", "CANCEL") and "quota" in limit["Reason"]
    assert len(limit["Reason"]) <= 128  # Batch's limit on the reason
    for o in order:
        resources = props(o["ComputeEnvironment"]["Ref"])["ComputeResources"]
        assert resources["Ec2Configuration"] == [{"ImageType": "ECS_AL2023_NVIDIA"}]  # AL2 is past its end
        assert resources["LaunchTemplate"]["LaunchTemplateId"] == {"Ref": "GpuLaunchTemplate"}
    (disk,) = props("GpuLaunchTemplate")["LaunchTemplateData"]["BlockDeviceMappings"]
    assert disk["Ebs"]["VolumeSize"] == {"Ref": "GpuRootVolumeGiB"}
    assert int(TEMPLATE["Parameters"]["GpuRootVolumeGiB"]["Default"]) >= 50  # a ~9 GB image, extracted


def test_alarm_topic_is_encrypted_with_a_key_cloudwatch_may_use() -> None:
    topic = props("AlarmTopic")
    assert topic["KmsMasterKeyId"] == {"Ref": "AlarmTopicKey"}  # not alias/aws/sns: CloudWatch cannot use it
    statements = props("AlarmTopicKey")["KeyPolicy"]["Statement"]
    cloudwatch = [s for s in statements if s.get("Principal") == {"Service": "cloudwatch.amazonaws.com"}]
    assert cloudwatch and {"kms:Decrypt", "kms:GenerateDataKey*"} <= set(cloudwatch[0]["Action"])


def test_batch_retry_strategy_and_job_definition() -> None:
    jd = props("SeparationJobDefinition")
    assert jd["RetryStrategy"] == {
        "Attempts": 3,
        "EvaluateOnExit": [
            {"OnStatusReason": "Host EC2*", "Action": "RETRY"},
            {"OnReason": "*", "Action": "EXIT"},
        ],
    }
    container = jd["ContainerProperties"]
    assert container["Image"] == {"Ref": "SeparationImageUri"}
    # ECS runs the image's ENTRYPOINT (python /app/gpu_batch/entrypoint.py) + Command: arguments only.
    assert container["Command"] == ["Ref::tenant_id", "Ref::project_id", "Ref::source_key"]
    assert RESOURCES["SeparationJobDefinition"]["Metadata"]["Dockerfile"] == "gpu_batch/Dockerfile"
    assert set(jd["Parameters"]) == {"tenant_id", "project_id", "source_key"}
    req = {r["Type"]: r["Value"] for r in container["ResourceRequirements"]}
    assert req["GPU"] == "1" and int(req["VCPU"]) >= 1 and int(req["MEMORY"]) >= 4096
    assert jd["Timeout"]["AttemptDurationSeconds"] == {"Ref": "SeparationJobTimeoutSeconds"}
    env = {e["Name"]: e["Value"] for e in container["Environment"]}
    assert "DEMUCS_MODEL" in env
    fn_env = GLOBALS_FN["Environment"]["Variables"]
    for name, value in fn_env.items():
        if name != "AUDIOMIXER_BATCH_JOB_DEFINITION" and name.endswith(
            ("_TABLE", "_URL", "BUCKET", "ENDPOINT")
        ):
            assert env[name] == value, name
    ce = props("GpuComputeEnvironment")
    assert ce["Type"] == "MANAGED"
    cr = ce["ComputeResources"]
    assert cr["Type"] == "SPOT" and int(cr["MinvCpus"]) == 0
    assert cr["InstanceTypes"] and all(t.startswith(("g5", "g4dn")) for t in cr["InstanceTypes"])
    assert getatt(cr["InstanceRole"]) == ("BatchInstanceProfile", "Arn")
    queue = props("SeparationJobQueue")
    assert queue["ComputeEnvironmentOrder"][0]["ComputeEnvironment"] == {"Ref": "GpuComputeEnvironment"}


def test_batch_state_changes_reach_batch_events_function() -> None:
    events = props("BatchEventsFunction")["Events"]
    (rule,) = [e for e in events.values() if e["Type"] == "EventBridgeRule"]
    pattern = rule["Properties"]["Pattern"]
    assert pattern["source"] == ["aws.batch"]
    assert pattern["detail-type"] == ["Batch Job State Change"]
    assert pattern["detail"]["jobQueue"] == [{"Ref": "SeparationJobQueue"}]
    assert "FAILED" in pattern["detail"]["status"]


# ----------------------------------------------------------------------------------------------- APIs
def test_websocket_api_routes_stage_and_permissions() -> None:
    (ws_id,) = [
        k
        for k, v in of_type("AWS::ApiGatewayV2::Api").items()
        if v["Properties"]["ProtocolType"] == "WEBSOCKET"
    ]
    assert ws_id == "WebSocketApi"
    assert props(ws_id)["RouteSelectionExpression"] == "$request.body.action"
    routes = {
        p["RouteKey"]: p
        for p in (r["Properties"] for r in of_type("AWS::ApiGatewayV2::Route").values())
        if p["ApiId"] == {"Ref": ws_id}
    }
    integrations = of_type("AWS::ApiGatewayV2::Integration")
    expected = {
        "$connect": "WsConnectFunction",
        "$disconnect": "WsDisconnectFunction",
        "sync": "WsSyncFunction",
    }
    assert set(routes) == set(expected)
    permissions = [p["Properties"] for p in of_type("AWS::Lambda::Permission").values()]
    for key, fn in expected.items():
        integration = re.fullmatch(r"integrations/\$\{(\w+)\}", routes[key]["Target"]["Fn::Sub"])
        assert integration, routes[key]["Target"]
        uri = integrations[integration.group(1)]["Properties"]["IntegrationUri"]
        assert f"${{{fn}.Arn}}" in json.dumps(uri), (key, uri)
        assert any(
            p["FunctionName"] == {"Ref": fn} and p["Principal"] == "apigateway.amazonaws.com"
            for p in permissions
        )
    stages = [
        s["Properties"]
        for s in of_type("AWS::ApiGatewayV2::Stage").values()
        if s["Properties"]["ApiId"] == {"Ref": ws_id}
    ]
    (stage,) = stages
    assert stage["StageName"] == {"Ref": "WebSocketStageName"}
    assert {"ThrottlingBurstLimit", "ThrottlingRateLimit"} <= set(stage["DefaultRouteSettings"])
    # A Deployment resource is created once and never again: later route changes would not be deployed.
    assert stage["AutoDeploy"] is True and "DeploymentId" not in stage
    assert not of_type("AWS::ApiGatewayV2::Deployment")
    (stage_resource,) = [
        r for r in of_type("AWS::ApiGatewayV2::Stage").values() if r["Properties"]["ApiId"] == {"Ref": ws_id}
    ]
    assert set(stage_resource["DependsOn"]) >= {"WsConnectRoute", "WsDisconnectRoute", "WsSyncRoute"}


def test_http_api_routes_everything_to_the_api_function_with_throttling_and_cors() -> None:
    http = props("HttpApi")
    assert http["ProtocolType"] == "HTTP"
    assert http["CorsConfiguration"]["AllowOrigins"] == {"Ref": "CorsAllowOriginList"}
    assert getatt(props("HttpApiIntegration")["IntegrationUri"]) == ("ApiFunction", "Arn")
    assert props("HttpApiIntegration")["PayloadFormatVersion"] == "2.0"
    keys = {
        p["RouteKey"]: p
        for p in (r["Properties"] for r in of_type("AWS::ApiGatewayV2::Route").values())
        if p["ApiId"] == {"Ref": "HttpApi"}
    }
    assert "$default" in keys and keys["GET /health"]["AuthorizationType"] == "NONE"
    # No gateway authorizer: it would refuse API keys and catch CORS preflights; the app verifies both
    # API keys and (with JwtIssuer) JWTs, and the functions get the JWT settings from the environment.
    assert keys["$default"]["AuthorizationType"] == "NONE"
    assert not of_type("AWS::ApiGatewayV2::Authorizer")
    env = GLOBALS_FN["Environment"]["Variables"]
    assert env["AUDIOMIXER_JWT_ISSUER"] == {"Ref": "JwtIssuer"}
    assert env["AUDIOMIXER_JWT_TENANT_CLAIM"] == {"Ref": "JwtTenantClaim"}
    assert TEMPLATE["Parameters"]["JwtTenantClaim"]["Default"] == ""  # no user-writable claim by default
    assert {"retry-after", "idempotent-replayed"} <= set(http["CorsConfiguration"]["ExposeHeaders"])
    stage = props("HttpApiStage")
    assert stage["StageName"] == "$default" and stage["AutoDeploy"] is True
    assert {"ThrottlingBurstLimit", "ThrottlingRateLimit"} <= set(stage["DefaultRouteSettings"])
    assert {"ApiUrl", "WebSocketUrl", "BucketName"} <= set(TEMPLATE["Outputs"])


def test_dashboard_is_valid_json_covering_queues_dlqs_and_functions() -> None:
    body = props("OperationsDashboard")["DashboardBody"]["Fn::Sub"]
    dashboard = json.loads(re.sub(r"\$\{[^}]+\}", "X", body))
    metrics = json.dumps(dashboard)
    for needle in ("ApproximateNumberOfMessagesVisible", "Errors", "Duration"):
        assert needle in metrics
    for name in [*QUEUES, *(q.replace("Queue", "DLQ") for q in QUEUES), *FUNCTIONS]:
        if name not in {"WsDisconnectFunction"}:
            assert name in body, name


# ----------------------------------------------------------------------------------------- tooling
def _sam_ready(template: dict[str, Any]) -> dict[str, Any]:
    """What `sam package` would upload: local paths become S3/ECR URIs."""
    t = copy.deepcopy(template)
    for res in t["Resources"].values():
        p = res.get("Properties", {})
        for key in ("CodeUri", "ContentUri"):
            if isinstance(p.get(key), str):
                p[key] = "s3://bucket/key.zip"
        if p.get("PackageType") == "Image":
            p["ImageUri"] = "123456789012.dkr.ecr.us-east-1.amazonaws.com/audiomixer:latest"
    return t


def test_sam_transform_accepts_the_template(monkeypatch: pytest.MonkeyPatch) -> None:
    """The real AWS::Serverless transform, offline: catches what a deploy would reject (e.g. Runtime on
    an Image function)."""
    from samtranslator.translator.transform import transform

    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")

    class NoManagedPolicies:
        def load(self) -> dict[str, str]:
            return {}

    out = transform(_sam_ready(TEMPLATE), {}, NoManagedPolicies())
    resources = out["Resources"]
    mappings = {k: v for k, v in resources.items() if v["Type"] == "AWS::Lambda::EventSourceMapping"}
    assert len(mappings) == len(QUEUES)
    for mapping in mappings.values():
        assert mapping["Properties"]["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    for fn in FUNCTIONS:
        fp = resources[fn]["Properties"]
        assert fp["TracingConfig"] == {"Mode": "Active"}
        assert ("Runtime" in fp) == FUNCTIONS[fn][2]
    rules = [v for v in resources.values() if v["Type"] == "AWS::Events::Rule"]
    assert len(rules) == 2  # Batch state changes, and the sweep's schedule
    assert [
        r["Properties"]["ScheduleExpression"] for r in rules if "ScheduleExpression" in r["Properties"]
    ] == ["rate(15 minutes)"]
    assert "BatchEventsFunctionBatchStateChange" in resources  # referenced by BatchEventsDLQPolicy


def _sam() -> str | None:
    candidate = Path(sys.executable).with_name("sam")
    return str(candidate) if candidate.exists() else shutil.which("sam")


def test_sam_validate_lint_passes_offline() -> None:
    sam = _sam()
    if sam is None:
        pytest.skip("sam CLI not installed (pip install aws-sam-cli, see pyproject dev extra)")
    env = dict(os.environ, SAM_CLI_TELEMETRY="0", AWS_DEFAULT_REGION="us-east-1", AWS_REGION="us-east-1")
    result = subprocess.run(
        [sam, "validate", "--lint", "--template-file", str(TEMPLATE_PATH), "--region", "us-east-1"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_cfn_lint_with_its_informational_rules_finds_nothing() -> None:
    """Issue 12: cfn-lint, informational rules included, reports nothing that is not justified in the
    template (a finding is justified by a comment there and an ignore in Metadata, not here)."""
    cfn_lint = Path(sys.executable).with_name("cfn-lint")
    assert cfn_lint.exists(), "cfn-lint comes with aws-sam-cli (the dev extra)"
    result = subprocess.run(
        [str(cfn_lint), "--include-checks", "I", "--", str(TEMPLATE_PATH)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert result.returncode == 0 and result.stdout.strip() == "", result.stdout + result.stderr


def test_dockerfile_builds_each_function_and_bakes_a_numba_cache() -> None:
    text = (ROOT / "functions" / "audio.Dockerfile").read_text()
    assert "ARG FUNCTION" in text
    assert "NUMBA_CACHE_DIR=/opt/numba-cache" in text
    assert '"/tmp/src[audio]"' in text, "installs the package with its audio extra"
    assert "COPY functions/" in text and "layers/shared/audiomixer" in text
    for call in ("onset_detect", "yin"):
        assert call in text, f"numba warm-up should exercise {call}"
    # numba refuses a read-only cache dir, so the entrypoint must move the cache to /tmp
    assert "/tmp/numba-cache" in text


def test_docker_layers_put_what_changes_often_last_and_the_context_stays_small() -> None:
    def first(lines: list[str], needle: str) -> int:
        return next(i for i, line in enumerate(lines) if needle in line)

    gpu = (ROOT / "gpu_batch" / "Dockerfile").read_text().splitlines()
    # The ~320 MB weights layer must not be rebuilt (and re-pushed) by a source edit.
    assert (
        first(gpu, "get_model(")
        < first(gpu, "COPY layers/shared")
        < first(gpu, "COPY gpu_batch /app/gpu_batch")
    )
    audio = (ROOT / "functions" / "audio.Dockerfile").read_text().splitlines()
    # A build arg used before the dependency layers would give each function its own copy of them.
    assert first(audio, "ARG FUNCTION") > max(i for i, line in enumerate(audio) if line.startswith("RUN "))
    ignored = {
        line.strip() for line in (ROOT / ".dockerignore").read_text().splitlines() if not line.startswith("#")
    }
    assert {".git", ".venv", ".aws-sam", "tests"} <= ignored
    assert not ignored & {"pyproject.toml", "README.md", "layers", "functions", "gpu_batch"}


def test_the_api_serves_the_models_the_separation_image_holds() -> None:
    """template.yaml's ServedDemucsModels reaches the API and is the Dockerfile's DEMUCS_MODELS list,
    which holds the default model and is downloaded once, before any source."""
    import re as _re

    from audiomixer.settings import Settings

    params = TEMPLATE["Parameters"]
    served = params["ServedDemucsModels"]["Default"].split()
    assert params["DemucsModel"]["Default"] in served
    env = props("ApiFunction")["Environment"]["Variables"]
    assert env["AUDIOMIXER_SERVED_MODELS"] == {"Ref": "ServedDemucsModels"}
    gpu = (ROOT / "gpu_batch" / "Dockerfile").read_text()
    (arg,) = _re.findall(r'^ARG DEMUCS_MODELS="([^"]+)"$', gpu, flags=_re.M)
    assert arg.split() == served
    assert _re.search(r"^ARG DEMUCS_MODEL=(\S+)$", gpu, flags=_re.M)[1] == params["DemucsModel"]["Default"]  # type: ignore[index]
    assert Settings(served_models=" ".join(served)).served_models == served  # the env var's format
    lines = gpu.splitlines()
    download = next(i for i, line in enumerate(lines) if "for model in ${DEMUCS_MODELS}" in line)
    assert download < next(i for i, line in enumerate(lines) if line.startswith("COPY layers/shared"))


# ------------------------------------------------------------------------------------------- events
def _event(name: str) -> dict[str, Any]:
    return json.loads((EVENTS / name).read_text())


def test_http_events_parse_as_api_gateway_v2() -> None:
    from aws_lambda_powertools.utilities.parser.models import APIGatewayProxyEventV2Model

    health = APIGatewayProxyEventV2Model.model_validate(_event("api_health.json"))
    assert health.requestContext.http.method == "GET" and health.rawPath == "/health"
    listing = APIGatewayProxyEventV2Model.model_validate(_event("api_list_projects.json"))
    assert listing.rawPath == "/api/v1/projects"
    assert listing.headers and listing.headers["authorization"] == "Bearer dev-key-placeholder"


def test_websocket_events_parse() -> None:
    from aws_lambda_powertools.utilities.parser import models

    connect = models.APIGatewayWebSocketConnectEventModel.model_validate(_event("ws_connect.json"))
    assert connect.request_context.route_key == "$connect"
    assert connect.request_context.event_type == "CONNECT"
    raw = _event("ws_connect.json")
    assert set(raw["queryStringParameters"]) == {"token", "project_id"}
    disconnect = models.APIGatewayWebSocketDisconnectEventModel.model_validate(_event("ws_disconnect.json"))
    assert disconnect.request_context.event_type == "DISCONNECT"
    sync = models.APIGatewayWebSocketMessageEventModel.model_validate(_event("ws_sync.json"))
    assert sync.request_context.route_key == "sync" and json.loads(_event("ws_sync.json")["body"]) == {
        "action": "sync"
    }
    for raw in (_event("ws_connect.json"), _event("ws_disconnect.json"), _event("ws_sync.json")):
        rc = raw["requestContext"]
        assert (
            rc["connectionId"] and rc["apiId"] and rc["stage"] and rc["domainName"].endswith(".amazonaws.com")
        )


@pytest.mark.parametrize(
    ("name", "body"),
    [
        ("dispatch.json", {"tenant_id": "demo", "project_id": "0123456789abcdef0123456789abcdef"}),
        ("analyse.json", {"tenant_id": "demo", "kind": "project", "id": "0123456789abcdef0123456789abcdef"}),
        ("render.json", {"tenant_id": "demo", "mix_id": "fedcba9876543210fedcba9876543210"}),
    ],
)
def test_sqs_events_parse_with_contract_bodies(name: str, body: dict[str, str]) -> None:
    from aws_lambda_powertools.utilities.parser.models import SqsModel

    event = SqsModel.model_validate(_event(name))
    assert json.loads(str(event.Records[0].body)) == body
    assert event.Records[0].eventSourceARN.startswith("arn:aws:sqs:us-east-1:123456789012:")


def test_analyse_sound_and_ingest_events() -> None:
    from aws_lambda_powertools.utilities.parser.models import S3Model, SqsModel

    sound = json.loads(str(SqsModel.model_validate(_event("analyse_sound.json")).Records[0].body))
    assert sound["kind"] == "sound" and sound["tenant_id"] == "demo"
    ingest = SqsModel.model_validate(_event("ingest.json"))
    s3 = S3Model.model_validate(json.loads(str(ingest.Records[0].body)))
    assert s3.Records[0].eventName.startswith("ObjectCreated:")
    s3_object = s3.Records[0].s3.object
    assert s3_object is not None
    assert s3_object.key == "uploads/demo/base-track/0123456789abcdef0123456789abcdef"


@pytest.mark.parametrize("status", ["FAILED", "SUCCEEDED"])
def test_batch_events_parse(status: str) -> None:
    from aws_lambda_powertools.utilities.parser.models import EventBridgeModel

    event = EventBridgeModel.model_validate(_event(f"batch_events_{status.lower()}.json"))
    assert event.source == "aws.batch" and event.detail_type == "Batch Job State Change"
    detail = event.detail
    assert isinstance(detail, dict)
    assert detail["status"] == status
    assert detail["jobQueue"].startswith("arn:aws:batch:us-east-1:123456789012:job-queue/")
    assert set(detail["parameters"]) == {"tenant_id", "project_id", "source_key"}
    assert detail["attempts"] and "exitCode" in detail["attempts"][-1]["container"]
    assert ("exitCode" in detail["container"]) and (detail["container"]["exitCode"] == 0) == (
        status == "SUCCEEDED"
    )
    assert {"jobName", "jobId", "statusReason"} <= set(detail)


# ---------------------------------------------------------------------------------------- localstack
def test_localstack_init_creates_the_templates_data_plane(monkeypatch: pytest.MonkeyPatch) -> None:
    """The LocalStack ready.d hook, run here against moto in-process instead of LocalStack."""
    import importlib.util

    import boto3
    from moto import mock_aws

    for name, value in {
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ACCESS_KEY_ID": "t",
        "AWS_SECRET_ACCESS_KEY": "t",
    }.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    spec = importlib.util.spec_from_file_location(
        "ls_init", ROOT / "localstack" / "init" / "create_resources.py"
    )
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    with mock_aws():
        env = module.create(TEMPLATE_PATH, None)
        assert module.create(TEMPLATE_PATH, None) == env, "re-running must be harmless"
        assert env["AUDIOMIXER_BUCKET"] == "audiomixer-audiobucket"
        assert env["AUDIOMIXER_PROJECTS_TABLE"] == "audiomixer-ProjectsTable"
        sqs = boto3.client("sqs", region_name="us-east-1")
        for queue in _ENV_OF_QUEUE:
            attrs = sqs.get_queue_attributes(QueueUrl=env[_ENV_OF_QUEUE[queue]], AttributeNames=["All"])[
                "Attributes"
            ]
            assert int(attrs["VisibilityTimeout"]) == int(props(queue)["VisibilityTimeout"])
            redrive = json.loads(attrs["RedrivePolicy"])
            assert redrive["deadLetterTargetArn"].endswith(f"audiomixer-{queue.replace('Queue', 'DLQ')}")
            assert int(redrive["maxReceiveCount"]) == 5
        s3 = boto3.client("s3", region_name="us-east-1")
        (config,) = s3.get_bucket_notification_configuration(Bucket=env["AUDIOMIXER_BUCKET"])[
            "QueueConfigurations"
        ]
        assert config["QueueArn"].endswith(":audiomixer-IngestQueue")
        ddb = boto3.client("dynamodb", region_name="us-east-1")
        table = ddb.describe_table(TableName="audiomixer-ConnectionsTable")["Table"]
        assert table["GlobalSecondaryIndexes"][0]["IndexName"] == "subscription_index"


_ENV_OF_QUEUE = {
    "IngestQueue": "AUDIOMIXER_INGEST_QUEUE_URL",
    "SeparateQueue": "AUDIOMIXER_SEPARATE_QUEUE_URL",
    "AnalyseQueue": "AUDIOMIXER_ANALYSE_QUEUE_URL",
    "RenderQueue": "AUDIOMIXER_RENDER_QUEUE_URL",
}


def test_the_dependency_layer_leaves_pydantic_v1_out_before_compiling() -> None:
    """The recipe as make runs it: pydantic/v1 goes once the wheels have landed (before, pip would put it
    back), and no bytecode is made for it."""
    recipe = subprocess.run(
        ["make", "-n", "-s", "-C", str(ROOT / "layers" / "core_deps"), "build-CoreDepsLayer"],
        env={**os.environ, "ARTIFACTS_DIR": "/artifacts", "PYTHON": "python3.11"},
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    steps = [line.strip() for line in recipe.splitlines() if not line.startswith("\t")]
    install = next(i for i, step in enumerate(steps) if " -m pip install " in step)
    removal = steps.index('rm -rf "/artifacts/python/pydantic/v1"')
    compile_ = next(i for i, step in enumerate(steps) if " -m compileall " in step)
    assert install < removal < compile_
