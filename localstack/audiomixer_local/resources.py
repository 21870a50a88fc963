"""Creates, in moto (server or in-process `mock_aws`), every resource template.yaml declares, and resolves
the functions' environment against them. Names, timeouts, batch sizes and redrive policies are read from
the template, never repeated here.

AUDIOMIXER_LOCAL_TIME_SCALE (float, default 1) multiplies every queue's VisibilityTimeout at creation
(rounded, at least 1 s) and the retry backoff (AUDIOMIXER_RETRY_BACKOFF_S), so fault-injection tests can
watch redelivery and DLQ moves in seconds; AUDIOMIXER_LOCAL_BATCH_TIME_SCALE does the same for the job
queue's job-state time limits (separately: local separation is not any faster for it)."""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3

from audiomixer_local import iam
from audiomixer_local.template import Template, UnresolvableError, referenced_ids

log = logging.getLogger("audiomixer_local")

FUNCTION_TYPES = ("AWS::Serverless::Function", "AWS::Lambda::Function")
DEFAULT_TIMEOUT_S = 3
DEFAULT_MEMORY_MB = 128
# Pepper used for the SSM parameter the template names when no AUDIOMIXER_API_KEY_PEPPER is set locally.
LOCAL_PEPPER = "local-dev-pepper"


_RATE = re.compile(r"^rate\((\d+) (minute|minutes|hour|hours|day|days)\)$")
_UNIT_S = {"minute": 60, "hour": 3600, "day": 86400}


def rate_seconds(expression: str) -> float:
    """Seconds between runs of an EventBridge `rate(N unit)` schedule (cron schedules are not run
    locally)."""
    match = _RATE.match(expression.strip())
    if match is None:
        raise ValueError(f"only rate(...) schedules run locally, not {expression!r}")
    return float(int(match[1]) * _UNIT_S[match[2].rstrip("s")])


def batch_time_scale() -> float:
    """AUDIOMIXER_LOCAL_BATCH_TIME_SCALE: multiplies the job queue's job-state time limits. Separate from
    the queues' scale because local separation runs at CPU speed whatever that scale says."""
    try:
        value = float(os.environ.get("AUDIOMIXER_LOCAL_BATCH_TIME_SCALE", "1") or 1)
    except ValueError:
        return 1.0
    return value if value > 0 else 1.0


def time_scale() -> float:
    try:
        value = float(os.environ.get("AUDIOMIXER_LOCAL_TIME_SCALE", "1") or 1)
    except ValueError:
        return 1.0
    return value if value > 0 else 1.0


def scaled_timeout(seconds: float) -> float:
    """A duration scaled by AUDIOMIXER_LOCAL_TIME_SCALE (never below 1 s)."""
    return max(1.0, math.ceil(seconds * time_scale()))


@dataclass
class QueueInfo:
    logical_id: str
    name: str
    arn: str
    url: str = ""
    visibility_timeout: int = 30
    dlq: str | None = None  # logical id of its dead-letter queue
    max_receive_count: int | None = None


@dataclass
class SqsSource:
    """One SQS event source mapping."""

    queue: str  # logical id
    batch_size: int = 10
    report_batch_item_failures: bool = False
    maximum_concurrency: int | None = None
    batching_window_s: float = 0.0
    enabled: bool = True


@dataclass
class FunctionSpec:
    logical_id: str
    name: str
    arn: str
    code_dir: Path
    module_file: Path
    handler_attr: str
    timeout_s: float = DEFAULT_TIMEOUT_S
    memory_mb: int = DEFAULT_MEMORY_MB
    environment: dict[str, str] = field(default_factory=dict)
    sqs_sources: list[SqsSource] = field(default_factory=list)
    event_patterns: list[dict[str, Any]] = field(default_factory=list)
    # Logical id of the queue an event it failed on every try goes to (EventInvokeConfig's OnFailure
    # destination, else its rule's DeadLetterConfig), or None.
    event_dlq: str | None = None
    schedules_s: list[float] = field(default_factory=list)  # rate(...) Schedule events, in seconds
    # What its code may do (its role's policies); None runs it unchecked.
    principal: iam.Principal | None = None

    @property
    def dir_name(self) -> str:
        return self.code_dir.name


@dataclass
class WebSocketSpec:
    api_id: str
    stage: str
    route_selection_expression: str = "$request.body.action"
    routes: dict[str, str] = field(default_factory=dict)  # route key -> function logical id
    two_way_routes: set[str] = field(default_factory=set)


@dataclass
class BatchInfo:
    job_queues: dict[str, tuple[str, str]] = field(default_factory=dict)  # lid -> (name, arn)
    job_definitions: dict[str, tuple[str, str]] = field(default_factory=dict)
    compute_environments: dict[str, tuple[str, str]] = field(default_factory=dict)
    # job definition name -> the Dockerfile its image is built from (the resource's Metadata.Dockerfile)
    dockerfiles: dict[str, Path] = field(default_factory=dict)
    # job definition name -> logical id of its JobRoleArn's role
    job_roles: dict[str, str] = field(default_factory=dict)
    # job queue name -> its JobStateTimeLimitActions (camelCase, maxTimeSeconds already time-scaled)
    time_limits: dict[str, list[dict[str, Any]]] = field(default_factory=dict)


@dataclass
class LocalResources:
    template: Template
    endpoint_url: str | None
    queues: dict[str, QueueInfo] = field(default_factory=dict)
    tables: dict[str, str] = field(default_factory=dict)
    buckets: dict[str, str] = field(default_factory=dict)
    batch: BatchInfo = field(default_factory=BatchInfo)
    functions: dict[str, FunctionSpec] = field(default_factory=dict)
    websocket: WebSocketSpec | None = None
    env: dict[str, str] = field(default_factory=dict)
    http_api_function: str | None = None  # logical id of the function behind the HTTP API
    # Per function and per IAM role logical id: the policies its code runs under (local IAM check).
    principals: dict[str, iam.Principal] = field(default_factory=dict)

    def job_principal(self, job_definition_name: str) -> iam.Principal | None:
        """The role a job of this definition runs as (its JobRoleArn), or None when it has none."""
        role = self.batch.job_roles.get(job_definition_name)
        return self.principals.get(role) if role else None

    @property
    def region(self) -> str:
        return self.template.region

    @property
    def account_id(self) -> str:
        return self.template.account_id

    def queue(self, key: str) -> QueueInfo:
        """A queue by logical id, name, URL or ARN."""
        for q in self.queues.values():
            if key in (q.logical_id, q.name, q.url, q.arn):
                return q
        raise KeyError(f"no queue {key!r}; known: {', '.join(sorted(self.queues))}")

    def dlq_sources(self, dlq_logical_id: str) -> list[QueueInfo]:
        return [q for q in self.queues.values() if q.dlq == dlq_logical_id]

    @property
    def dead_letter_queues(self) -> list[QueueInfo]:
        dlqs = {q.dlq for q in self.queues.values() if q.dlq}
        return [self.queues[d] for d in sorted(dlqs)]

    def function(self, key: str) -> FunctionSpec:
        """A function by logical id, function name or code directory name."""
        for f in self.functions.values():
            if key in (f.logical_id, f.name, f.dir_name):
                return f
        raise KeyError(f"no function {key!r}; known: {', '.join(sorted(self.functions))}")

    def sqs_mappings(self) -> list[tuple[FunctionSpec, SqsSource]]:
        return [(f, s) for f in self.functions.values() for s in f.sqs_sources if s.enabled]

    def process_env(self) -> dict[str, str]:
        """The environment a handler or Batch job needs: template variables plus AWS plumbing."""
        env = dict(self.env)
        env.setdefault("AWS_REGION", self.region)
        env.setdefault("AWS_DEFAULT_REGION", self.region)
        env.setdefault("AWS_ACCESS_KEY_ID", os.environ.get("AWS_ACCESS_KEY_ID", "testing"))
        env.setdefault("AWS_SECRET_ACCESS_KEY", os.environ.get("AWS_SECRET_ACCESS_KEY", "testing"))
        if self.endpoint_url:
            env["AWS_ENDPOINT_URL"] = self.endpoint_url
        return env


def _str(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (dict, list)):
        return json.dumps(value)
    return str(value)


def _local_id(logical_id: str) -> str:
    # API ids look like "a1b2c3d4e5" in AWS; keep them stable across restarts.
    return hashlib.sha1(logical_id.encode()).hexdigest()[:10]


def _camel(node: Any) -> Any:
    """CloudFormation PascalCase property tree -> the Batch API's camelCase."""
    if isinstance(node, list):
        return [_camel(x) for x in node]
    if isinstance(node, dict):
        return {(k[:1].lower() + k[1:]): _camel(v) for k, v in node.items()}
    return node


class _Builder:
    def __init__(self, t: Template, endpoint_url: str | None, ws_endpoint: str | None) -> None:
        self.t = t
        self.endpoint_url = endpoint_url
        self.ws_endpoint = ws_endpoint
        self.res = LocalResources(template=t, endpoint_url=endpoint_url)

    def client(self, service: str) -> Any:
        return boto3.client(service, region_name=self.t.region, endpoint_url=self.endpoint_url)  # type: ignore[call-overload]

    def name(self, lid: str, props: dict[str, Any], key: str, lower: bool = False) -> str:
        if key in props:
            return str(self.t.resolve(props[key]))
        default = f"{self.t.stack_name}-{lid}"
        return default.lower() if lower else default

    # --- pass 1: physical names and ARNs, no API calls --------------------------------------------
    def plan(self) -> None:
        t, region, account = self.t, self.t.region, self.t.account_id
        for lid, r in t.resources.items():
            props = dict(r.get("Properties") or {})
            kind = r.get("Type", "")
            try:
                if kind == "AWS::SQS::Queue":
                    name = self.name(lid, props, "QueueName")
                    arn = f"arn:aws:sqs:{region}:{account}:{name}"
                    self.res.queues[lid] = QueueInfo(lid, name, arn)
                    t.refs[lid] = (
                        f"https://sqs.{region}.amazonaws.com/{account}/{name}"  # replaced once created
                    )
                    t.attrs[lid] = {"Arn": arn, "QueueName": name, "QueueUrl": t.refs[lid]}
                elif kind == "AWS::DynamoDB::Table":
                    name = self.name(lid, props, "TableName")
                    self.res.tables[lid] = name
                    t.refs[lid] = name
                    t.attrs[lid] = {"Arn": f"arn:aws:dynamodb:{region}:{account}:table/{name}"}
                elif kind == "AWS::S3::Bucket":
                    name = self.name(lid, props, "BucketName", lower=True)
                    self.res.buckets[lid] = name
                    t.refs[lid] = name
                    t.attrs[lid] = {
                        "Arn": f"arn:aws:s3:::{name}",
                        "DomainName": f"{name}.s3.amazonaws.com",
                        "RegionalDomainName": f"{name}.s3.{region}.amazonaws.com",
                    }
                elif kind == "AWS::Batch::ComputeEnvironment":
                    name = self.name(lid, props, "ComputeEnvironmentName")
                    arn = f"arn:aws:batch:{region}:{account}:compute-environment/{name}"
                    self.res.batch.compute_environments[lid] = (name, arn)
                    t.refs[lid] = arn
                    t.attrs[lid] = {"ComputeEnvironmentArn": arn}
                elif kind == "AWS::Batch::JobQueue":
                    name = self.name(lid, props, "JobQueueName")
                    arn = f"arn:aws:batch:{region}:{account}:job-queue/{name}"
                    self.res.batch.job_queues[lid] = (name, arn)
                    t.refs[lid] = arn
                    t.attrs[lid] = {"JobQueueArn": arn}
                elif kind == "AWS::Batch::JobDefinition":
                    name = self.name(lid, props, "JobDefinitionName")
                    arn = f"arn:aws:batch:{region}:{account}:job-definition/{name}:1"
                    self.res.batch.job_definitions[lid] = (name, arn)
                    t.refs[lid] = arn
                    dockerfile = (r.get("Metadata") or {}).get("Dockerfile")
                    if dockerfile:
                        self.res.batch.dockerfiles[name] = t.root / str(dockerfile)
                    role = referenced_ids((props.get("ContainerProperties") or {}).get("JobRoleArn"))
                    if role:
                        self.res.batch.job_roles[name] = sorted(role)[0]
                elif kind in FUNCTION_TYPES:
                    name = self.name(lid, props, "FunctionName")
                    t.refs[lid] = name
                    t.attrs[lid] = {"Arn": f"arn:aws:lambda:{region}:{account}:function:{name}"}
                elif kind in ("AWS::IAM::Role", "AWS::IAM::InstanceProfile"):
                    name = self.name(
                        lid, props, "RoleName" if kind.endswith("Role") else "InstanceProfileName"
                    )
                    path = "role" if kind.endswith("Role") else "instance-profile"
                    t.refs[lid] = name
                    t.attrs[lid] = {"Arn": f"arn:aws:iam::{account}:{path}/{name}"}
                elif kind in ("AWS::ApiGatewayV2::Api", "AWS::Serverless::HttpApi", "AWS::Serverless::Api"):
                    api_id = _local_id(lid)
                    t.refs[lid] = api_id
                    t.attrs[lid] = {
                        "ApiId": api_id,
                        "ApiEndpoint": f"https://{api_id}.execute-api.{region}.amazonaws.com",
                    }
                else:
                    # Resources the local stack does not emulate still need a stable physical id.
                    t.refs[lid] = _local_id(lid)
                    t.attrs.setdefault(lid, {"Arn": f"arn:aws:local:{region}:{account}:{lid}"})
            except UnresolvableError as exc:
                raise UnresolvableError(f"{lid}: {exc}") from exc

    # --- pass 2: create ---------------------------------------------------------------------------
    def create_queues(self) -> None:
        sqs = self.client("sqs")
        scale = time_scale()
        # Dead-letter targets first: a RedrivePolicy must name an existing queue.
        order = sorted(self.res.queues, key=lambda lid: "RedrivePolicy" in self.t.props(lid))
        for lid in order:
            q, props = self.res.queues[lid], self.t.props(lid)
            attributes: dict[str, str] = {}
            vt = int(self.t.resolve(props.get("VisibilityTimeout", 30)))
            q.visibility_timeout = max(1, round(vt * scale)) if scale != 1 else vt
            attributes["VisibilityTimeout"] = str(q.visibility_timeout)
            for key in (
                "MessageRetentionPeriod",
                "DelaySeconds",
                "MaximumMessageSize",
                "ReceiveMessageWaitTimeSeconds",
                "FifoQueue",
                "ContentBasedDeduplication",
            ):
                if key in props:
                    attributes[key] = _str(self.t.resolve(props[key]))
            if "RedrivePolicy" in props:
                policy = self.t.resolve(props["RedrivePolicy"])
                if isinstance(policy, str):
                    policy = json.loads(policy)
                target = policy["deadLetterTargetArn"]
                q.max_receive_count = int(policy["maxReceiveCount"])
                q.dlq = next((d.logical_id for d in self.res.queues.values() if d.arn == target), None)
                attributes["RedrivePolicy"] = json.dumps(
                    {"deadLetterTargetArn": target, "maxReceiveCount": q.max_receive_count}
                )
            q.url = sqs.create_queue(QueueName=q.name, Attributes=attributes)["QueueUrl"]
            self.t.refs[lid] = q.url
            self.t.attrs[lid]["QueueUrl"] = q.url

    def create_tables(self) -> None:
        ddb = self.client("dynamodb")
        for lid, name in self.res.tables.items():
            props = self.t.resolve(self.t.props(lid))
            billing = props.get("BillingMode", "PROVISIONED")
            kwargs: dict[str, Any] = {
                "TableName": name,
                "KeySchema": props["KeySchema"],
                "AttributeDefinitions": props["AttributeDefinitions"],
                "BillingMode": billing,
            }
            throughput = props.get("ProvisionedThroughput") or {
                "ReadCapacityUnits": 5,
                "WriteCapacityUnits": 5,
            }
            if billing == "PROVISIONED":
                kwargs["ProvisionedThroughput"] = throughput
            for key in ("GlobalSecondaryIndexes", "LocalSecondaryIndexes"):
                if props.get(key):
                    indexes = [dict(i) for i in props[key]]
                    if billing == "PROVISIONED" and key == "GlobalSecondaryIndexes":
                        for index in indexes:
                            index.setdefault("ProvisionedThroughput", throughput)
                    kwargs[key] = indexes
            if props.get("StreamSpecification"):
                kwargs["StreamSpecification"] = {"StreamEnabled": True, **props["StreamSpecification"]}
            try:
                ddb.create_table(**kwargs)
            except ddb.exceptions.ResourceInUseException:
                continue  # created by an earlier run
            ddb.get_waiter("table_exists").wait(TableName=name)
            ttl = props.get("TimeToLiveSpecification")
            if ttl and ttl.get("Enabled") in (True, "true", "True"):
                ddb.update_time_to_live(
                    TableName=name,
                    TimeToLiveSpecification={"AttributeName": ttl["AttributeName"], "Enabled": True},
                )
            pitr = props.get("PointInTimeRecoverySpecification") or {}
            if pitr.get("PointInTimeRecoveryEnabled") in (True, "true", "True"):
                ddb.update_continuous_backups(
                    TableName=name, PointInTimeRecoverySpecification={"PointInTimeRecoveryEnabled": True}
                )

    def create_buckets(self) -> None:
        s3 = self.client("s3")
        for lid, name in self.res.buckets.items():
            props = self.t.resolve(self.t.props(lid))
            with contextlib.suppress(s3.exceptions.BucketAlreadyOwnedByYou):
                if self.t.region == "us-east-1":
                    s3.create_bucket(Bucket=name)
                else:
                    s3.create_bucket(
                        Bucket=name, CreateBucketConfiguration={"LocationConstraint": self.t.region}
                    )
            if "PublicAccessBlockConfiguration" in props:
                s3.put_public_access_block(
                    Bucket=name, PublicAccessBlockConfiguration=props["PublicAccessBlockConfiguration"]
                )
            cors = (props.get("CorsConfiguration") or {}).get("CorsRules")
            if cors:
                rules = []
                for rule in cors:
                    rule = dict(rule)
                    if "Id" in rule:
                        rule["ID"] = rule.pop("Id")
                    if "ExposedHeaders" in rule:
                        rule["ExposeHeaders"] = rule.pop("ExposedHeaders")
                    if "MaxAge" in rule:
                        rule["MaxAgeSeconds"] = int(rule.pop("MaxAge"))
                    rules.append(rule)
                s3.put_bucket_cors(Bucket=name, CORSConfiguration={"CORSRules": rules})
            lifecycle = (props.get("LifecycleConfiguration") or {}).get("Rules")
            if lifecycle:
                s3.put_bucket_lifecycle_configuration(
                    Bucket=name, LifecycleConfiguration={"Rules": [_lifecycle_rule(r) for r in lifecycle]}
                )
            notifications = props.get("NotificationConfiguration") or {}
            queue_configs = [
                {
                    "QueueArn": c["Queue"],
                    "Events": [c["Event"]],
                    **(_s3_filter(c["Filter"]) if c.get("Filter") else {}),
                }
                for c in notifications.get("QueueConfigurations") or []
            ]
            if queue_configs:
                # moto delivers ObjectCreated events to SQS itself (verified by test_local_resources).
                s3.put_bucket_notification_configuration(
                    Bucket=name, NotificationConfiguration={"QueueConfigurations": queue_configs}
                )

    def create_batch(self) -> None:
        if not (self.res.batch.job_queues or self.res.batch.job_definitions):
            return
        batch, iam = self.client("batch"), self.client("iam")
        # Records only: environments are UNMANAGED locally (jobs run as subprocesses, see local.batch),
        # so subnets, instance types and the real service role do not matter here.
        role_name = f"{self.t.stack_name}-local-batch-service"
        try:
            role_arn = iam.create_role(RoleName=role_name, AssumeRolePolicyDocument="{}")["Role"]["Arn"]
        except iam.exceptions.EntityAlreadyExistsException:
            role_arn = iam.get_role(RoleName=role_name)["Role"]["Arn"]
        for _lid, (name, _arn) in self.res.batch.compute_environments.items():
            batch.create_compute_environment(
                computeEnvironmentName=name, type="UNMANAGED", state="ENABLED", serviceRole=role_arn
            )
        if not self.res.batch.compute_environments and self.res.batch.job_queues:
            name = f"{self.t.stack_name}-local-compute"
            batch.create_compute_environment(
                computeEnvironmentName=name, type="UNMANAGED", state="ENABLED", serviceRole=role_arn
            )
        envs = batch.describe_compute_environments()["computeEnvironments"]
        by_arn = {e["computeEnvironmentArn"]: e["computeEnvironmentArn"] for e in envs}
        for lid, (name, _arn) in self.res.batch.job_queues.items():
            props = self.t.resolve(self.t.props(lid))
            order = [
                {"order": int(o.get("Order", i)), "computeEnvironment": o["ComputeEnvironment"]}
                for i, o in enumerate(props.get("ComputeEnvironmentOrder") or [])
                if o.get("ComputeEnvironment") in by_arn
            ] or [{"order": 1, "computeEnvironment": envs[0]["computeEnvironmentArn"]}]
            created = batch.create_job_queue(
                jobQueueName=name,
                state="ENABLED",
                priority=int(props.get("Priority", 1)),
                computeEnvironmentOrder=order,
            )
            self.res.batch.job_queues[lid] = (name, created["jobQueueArn"])
            self.t.refs[lid] = created["jobQueueArn"]
            limits = _camel(props.get("JobStateTimeLimitActions") or [])
            for limit in limits:
                seconds = float(limit["maxTimeSeconds"]) * batch_time_scale()
                limit["maxTimeSeconds"] = max(1.0, math.ceil(seconds))
            self.res.batch.time_limits[name] = limits
            self.t.attrs[lid] = {"JobQueueArn": created["jobQueueArn"]}
        for lid, (name, _arn) in self.res.batch.job_definitions.items():
            props = self.t.resolve(self.t.props(lid))
            container = _camel(props.get("ContainerProperties") or {})
            container["image"] = container.get("image") or f"local/{name}"
            for key in ("vcpus", "memory"):
                if key in container:
                    container[key] = int(container[key])
            for req in container.get("resourceRequirements") or []:
                req["value"] = str(req["value"])
            for var in container.get("environment") or []:
                var["value"] = _str(var.get("value", ""))
            kwargs: dict[str, Any] = {
                "jobDefinitionName": name,
                "type": props.get("Type", "container"),
                "containerProperties": container,
            }
            if props.get("Parameters"):
                kwargs["parameters"] = {k: _str(v) for k, v in props["Parameters"].items()}
            if props.get("RetryStrategy"):
                strategy = _camel(props["RetryStrategy"])
                if "attempts" in strategy:
                    strategy["attempts"] = int(strategy["attempts"])
                kwargs["retryStrategy"] = strategy
            if props.get("Timeout"):
                kwargs["timeout"] = {
                    "attemptDurationSeconds": int(props["Timeout"]["AttemptDurationSeconds"])
                }
            if "PropagateTags" in props:
                kwargs["propagateTags"] = props["PropagateTags"] in (True, "true", "True")
            if props.get("PlatformCapabilities"):
                kwargs["platformCapabilities"] = props["PlatformCapabilities"]
            created = batch.register_job_definition(**kwargs)
            self.res.batch.job_definitions[lid] = (name, created["jobDefinitionArn"])
            self.t.refs[lid] = created["jobDefinitionArn"]

    # --- functions, routes, env -------------------------------------------------------------------
    def functions(self) -> None:
        g = self.t.globals_function
        for lid, r in self.t.of_type(*FUNCTION_TYPES).items():
            props = {**g, **dict(r.get("Properties") or {})}
            code_dir, module_file, attr = _code_location(self.t, lid, r, props)
            spec = FunctionSpec(
                logical_id=lid,
                name=self.t.refs[lid],
                arn=self.t.attrs[lid]["Arn"],
                code_dir=code_dir,
                module_file=module_file,
                handler_attr=attr,
                timeout_s=float(self.t.resolve(props.get("Timeout", DEFAULT_TIMEOUT_S))),
                memory_mb=int(self.t.resolve(props.get("MemorySize", DEFAULT_MEMORY_MB))),
                environment={
                    k: _str(v)
                    for k, v in (
                        self.t.resolve(
                            ((r.get("Properties") or {}).get("Environment") or {}).get("Variables")
                        )
                        or {}
                    ).items()
                },
            )
            for event in (r.get("Properties") or {}).get("Events", {}).values():
                ep = event.get("Properties") or {}
                if event.get("Type") == "SQS":
                    spec.sqs_sources.append(self._sqs_source(ep.get("Queue"), ep))
                elif event.get("Type") in ("EventBridgeRule", "CloudWatchEvent"):
                    spec.event_patterns.append(self.t.resolve(ep.get("Pattern") or {}))
                    spec.event_dlq = spec.event_dlq or self._queue_ref(
                        (ep.get("DeadLetterConfig") or {}).get("Arn")
                    )
                elif event.get("Type") == "Schedule":
                    spec.schedules_s.append(rate_seconds(str(self.t.resolve(ep.get("Schedule")))))
            on_failure = ((props.get("EventInvokeConfig") or {}).get("DestinationConfig") or {}).get(
                "OnFailure"
            ) or {}
            if on_failure.get("Type") == "SQS":
                spec.event_dlq = self._queue_ref(on_failure.get("Destination")) or spec.event_dlq
            self.res.functions[lid] = spec
        for r in self.t.of_type("AWS::Lambda::EventSourceMapping").values():
            props = dict(r.get("Properties") or {})
            fn = self._function_ref(props.get("FunctionName"))
            if fn and any(q in self.res.queues for q in referenced_ids(props.get("EventSourceArn"))):
                self.res.functions[fn].sqs_sources.append(self._sqs_source(props["EventSourceArn"], props))
        for r in self.t.of_type("AWS::Events::Rule").values():
            props = dict(r.get("Properties") or {})
            if not props.get("EventPattern"):
                continue
            for target in props.get("Targets") or []:
                fn = self._function_ref(target.get("Arn"))
                if fn:
                    self.res.functions[fn].event_patterns.append(self.t.resolve(props["EventPattern"]))

    def _queue_ref(self, node: Any) -> str | None:
        return next((i for i in referenced_ids(node) if i in self.res.queues), None)

    def _function_ref(self, node: Any) -> str | None:
        return next((i for i in referenced_ids(node) if i in self.res.functions), None)

    def _sqs_source(self, queue_node: Any, props: dict[str, Any]) -> SqsSource:
        queue = next((i for i in referenced_ids(queue_node) if i in self.res.queues), None)
        if queue is None:
            arn = self.t.resolve(queue_node)
            queue = self.res.queue(str(arn)).logical_id
        scaling = self.t.resolve(props.get("ScalingConfig") or {})
        return SqsSource(
            queue=queue,
            batch_size=int(self.t.resolve(props.get("BatchSize", 10))),
            report_batch_item_failures="ReportBatchItemFailures"
            in (self.t.resolve(props.get("FunctionResponseTypes")) or []),
            maximum_concurrency=int(scaling["MaximumConcurrency"])
            if "MaximumConcurrency" in scaling
            else None,
            batching_window_s=float(self.t.resolve(props.get("MaximumBatchingWindowInSeconds", 0))),
            enabled=self.t.resolve(props.get("Enabled", True)) not in (False, "false", "False"),
        )

    def websocket(self) -> None:
        apis = {
            lid: r
            for lid, r in self.t.of_type("AWS::ApiGatewayV2::Api").items()
            if (r.get("Properties") or {}).get("ProtocolType") == "WEBSOCKET"
        }
        if not apis:
            return
        api_lid, api = next(iter(apis.items()))
        props = dict(api.get("Properties") or {})
        stage = next(
            (
                str(self.t.resolve(s["Properties"]["StageName"]))
                for s in self.t.of_type("AWS::ApiGatewayV2::Stage").values()
                if api_lid in referenced_ids((s.get("Properties") or {}).get("ApiId"))
            ),
            self.t.parameters.get("WebSocketStageName", "prod"),
        )
        spec = WebSocketSpec(
            api_id=self.t.refs[api_lid],
            stage=stage,
            route_selection_expression=str(props.get("RouteSelectionExpression", "$request.body.action")),
        )
        integrations = self.t.of_type("AWS::ApiGatewayV2::Integration")
        routes = {
            lid: r
            for lid, r in self.t.of_type("AWS::ApiGatewayV2::Route").items()
            if api_lid in referenced_ids((r.get("Properties") or {}).get("ApiId"))
        }
        for route in routes.values():
            rp = dict(route.get("Properties") or {})
            key = str(self.t.resolve(rp["RouteKey"]))
            for integration in referenced_ids(rp.get("Target")) & set(integrations):
                uri = (integrations[integration].get("Properties") or {}).get("IntegrationUri")
                fn = self._function_ref(uri)
                if fn:
                    spec.routes[key] = fn
        for rr in self.t.of_type("AWS::ApiGatewayV2::RouteResponse").values():
            for route_lid in referenced_ids((rr.get("Properties") or {}).get("RouteId")) & set(routes):
                spec.two_way_routes.add(str(self.t.resolve(routes[route_lid]["Properties"]["RouteKey"])))
        self.res.websocket = spec

    def http_api(self) -> None:
        http_apis = {
            lid
            for lid, r in self.t.of_type("AWS::ApiGatewayV2::Api").items()
            if (r.get("Properties") or {}).get("ProtocolType") == "HTTP"
        }
        for r in self.t.of_type("AWS::ApiGatewayV2::Integration").values():
            props = dict(r.get("Properties") or {})
            if referenced_ids(props.get("ApiId")) & http_apis:
                self.res.http_api_function = self._function_ref(props.get("IntegrationUri"))
                return

    def principals(self) -> None:
        """Each function's and role's policies as SAM deploys them (see audiomixer_local.iam)."""
        names = {lid: spec.name for lid, spec in self.res.functions.items()}
        self.res.principals = iam.build_principals(self.t, names, set(self.res.batch.job_roles.values()))
        for lid, spec in self.res.functions.items():
            spec.principal = self.res.principals[lid]
        if self.res.websocket:
            iam.set_websocket_api_id(self.res.websocket.api_id)
        iam.install()

    def environment(self) -> None:
        variables = (self.t.globals_function.get("Environment") or {}).get("Variables") or {}
        env: dict[str, str] = {}
        for key, node in variables.items():
            try:
                value = self.t.resolve(node)
            except UnresolvableError as exc:
                raise UnresolvableError(f"Globals.Function.Environment.Variables.{key}: {exc}") from exc
            if value is not None:
                env[key] = _str(value)
        for spec in self.res.functions.values():
            for key, value in spec.environment.items():
                if key in env and env[key] != value:
                    log.warning("%s overrides %s locally shared by all functions", spec.logical_id, key)
                env.setdefault(key, value)
        if "AUDIOMIXER_SERVED_MODELS" not in os.environ:
            # Local separation runs any model Demucs knows (fetched on first use), not only those an
            # AWS deployment's image holds: no restriction unless asked for.
            env.pop("AUDIOMIXER_SERVED_MODELS", None)
        scale = time_scale()
        if scale != 1 and "AUDIOMIXER_RETRY_BACKOFF_S" not in os.environ:
            # Retry delays shrink with the visibility timeouts, so a test sees backoff in seconds.
            from audiomixer.settings import Settings

            default = Settings.model_fields["retry_backoff_s"].default
            env["AUDIOMIXER_RETRY_BACKOFF_S"] = json.dumps([max(1, round(s * scale)) for s in default])
        if self.ws_endpoint is not None:
            env["AUDIOMIXER_WS_ENDPOINT"] = self.ws_endpoint
        env["AWS_REGION"] = env["AWS_DEFAULT_REGION"] = self.t.region
        if self.endpoint_url:
            env["AWS_ENDPOINT_URL"] = self.endpoint_url
        self.res.env = env

    def pepper_parameter(self) -> None:
        name = self.res.env.get("AUDIOMIXER_API_KEY_PEPPER_PARAMETER")
        if not name:
            return
        value = os.environ.get("AUDIOMIXER_API_KEY_PEPPER") or LOCAL_PEPPER
        self.client("ssm").put_parameter(Name=name, Value=value, Type="SecureString", Overwrite=True)


def _lifecycle_rule(rule: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {"Status": rule.get("Status", "Enabled")}
    if "Id" in rule:
        out["ID"] = rule["Id"]
    out["Filter"] = {"Prefix": rule.get("Prefix", "")}
    if "ExpirationInDays" in rule:
        out["Expiration"] = {"Days": int(rule["ExpirationInDays"])}
    abort = rule.get("AbortIncompleteMultipartUpload")
    if abort:
        out["AbortIncompleteMultipartUpload"] = {"DaysAfterInitiation": int(abort["DaysAfterInitiation"])}
    return out


def _s3_filter(node: dict[str, Any]) -> dict[str, Any]:
    rules = (node.get("S3Key") or {}).get("Rules") or []
    return {"Filter": {"Key": {"FilterRules": [{"Name": r["Name"], "Value": r["Value"]} for r in rules]}}}


def _code_location(t: Template, lid: str, r: dict[str, Any], props: dict[str, Any]) -> tuple[Path, Path, str]:
    """(code dir, module file, handler attribute) of a function, for zip and image functions alike."""
    if props.get("PackageType") == "Image":
        command = (t.resolve(props.get("ImageConfig") or {}) or {}).get("Command") or []
        if command:
            module, _, attr = str(command[0]).rpartition(".")
            module_file = t.root / (module.replace(".", "/") + ".py")
            if module_file.exists() or "/" in module or "." in module:
                return module_file.parent, module_file, attr
        build_args = (r.get("Metadata") or {}).get("DockerBuildArgs") or {}
        name = build_args.get("FUNCTION") or lid.removesuffix("Function").lower()
        code_dir = t.root / "functions" / str(name)
        return code_dir, code_dir / "app.py", "handler"
    code_uri = t.resolve(props.get("CodeUri", "."))
    code_dir = t.root / str(code_uri if isinstance(code_uri, str) else ".")
    module, _, attr = str(t.resolve(props.get("Handler", "app.handler"))).rpartition(".")
    return code_dir, code_dir / (module.replace(".", "/") + ".py"), attr


def create_resources(
    template_path: str | Path,
    *,
    endpoint_url: str | None = None,
    ws_endpoint: str | None = None,
    parameters: dict[str, str] | None = None,
    stack_name: str = "audiomixer",
    data_plane_only: bool = False,
) -> LocalResources:
    """Create every queue, table, bucket and Batch record of the template in moto and return what was
    made plus the resolved function environment. `endpoint_url=None` uses boto3's defaults, which is what
    an in-process `mock_aws` intercepts; pass the ThreadedMotoServer URL otherwise.
    `ws_endpoint` replaces AUDIOMIXER_WS_ENDPOINT (the local gateway's management URL).
    `data_plane_only` skips the Batch records (LocalStack's init hook: its community image has no Batch).
    Tables and buckets that already exist are kept, so running it twice is harmless."""
    sts = boto3.client(
        "sts", region_name=os.environ.get("AWS_DEFAULT_REGION", "us-east-1"), endpoint_url=endpoint_url
    )
    account = sts.get_caller_identity()["Account"]
    region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1"
    t = Template.from_file(
        template_path, parameters=parameters, StackName=stack_name, AccountId=account, Region=region
    )
    b = _Builder(t, endpoint_url, ws_endpoint)
    b.plan()
    b.create_queues()
    b.create_tables()
    b.create_buckets()
    if not data_plane_only:
        b.create_batch()
    b.functions()
    b.websocket()
    b.http_api()
    b.principals()
    b.environment()
    b.pepper_parameter()
    return b.res


def describe_template(
    template_path: str | Path,
    *,
    parameters: dict[str, str] | None = None,
    stack_name: str = "audiomixer",
    account_id: str = "123456789012",
    region: str = "us-east-1",
) -> LocalResources:
    """What create_resources would make, without any AWS call: names, function specs, routes and the
    environment (queue URLs in AWS's form). For tools that attach to a running stack (invoke, dlq)."""
    t = Template.from_file(
        template_path, parameters=parameters, StackName=stack_name, AccountId=account_id, Region=region
    )
    b = _Builder(t, None, None)
    b.plan()
    for lid, q in b.res.queues.items():
        props = t.props(lid)
        q.url = t.refs[lid]
        q.visibility_timeout = int(t.resolve(props.get("VisibilityTimeout", 30)))
        if "RedrivePolicy" in props:
            policy = t.resolve(props["RedrivePolicy"])
            policy = json.loads(policy) if isinstance(policy, str) else policy
            q.max_receive_count = int(policy["maxReceiveCount"])
            q.dlq = next(
                (d.logical_id for d in b.res.queues.values() if d.arn == policy["deadLetterTargetArn"]), None
            )
    b.functions()
    b.websocket()
    b.http_api()
    b.principals()
    b.environment()
    return b.res


def describe_queues(res: LocalResources, sqs: Any) -> dict[str, dict[str, Any]]:
    """Per queue: visible / in flight / delayed counts, plus DLQ depth for source queues."""
    out: dict[str, dict[str, Any]] = {}
    for q in res.queues.values():
        attrs = sqs.get_queue_attributes(QueueUrl=q.url, AttributeNames=["All"])["Attributes"]
        out[q.logical_id] = {
            "name": q.name,
            "url": q.url,
            "visible": int(attrs.get("ApproximateNumberOfMessages", 0)),
            "in_flight": int(attrs.get("ApproximateNumberOfMessagesNotVisible", 0)),
            "delayed": int(attrs.get("ApproximateNumberOfMessagesDelayed", 0)),
            "visibility_timeout": int(attrs.get("VisibilityTimeout", q.visibility_timeout)),
            "dlq": q.dlq,
            "max_receive_count": q.max_receive_count,
            "is_dlq": any(o.dlq == q.logical_id for o in res.queues.values()),
        }
    for entry in out.values():
        if entry["dlq"]:
            entry["dlq_depth"] = out[entry["dlq"]]["visible"] + out[entry["dlq"]]["in_flight"]
    return out
