"""Local IAM: every AWS call a function or the Batch job makes through the local stack is checked against
that function's (or the job role's) policies in template.yaml and refused as AWS refuses it.

Policies come from SAM's own translator (samtranslator, the code `sam deploy` runs), so policy templates
such as DynamoDBCrudPolicy, the execution-role managed policies SAM attaches (basic execution, X-Ray, the
SQS poller's) and the EventInvokeConfig destination policy are exactly what AWS would get. Plain
`AWS::IAM::Role` resources (the Batch job role) are read as written.

Why a check in botocore and not moto's IAM access control: moto evaluates resources only for S3, SQS, IAM
and STS (DynamoDB, SSM and Batch calls are matched against "*", so a table-scoped policy either denies
everything or, loosened, nothing), the @connections API is the local gateway rather than moto, and the
in-process functions share one process, one environment and cached clients, so per-function credentials
would still need a per-call switch. Here every botocore call (boto3 and PynamoDB alike) goes through
`BaseClient._make_api_call`; while a principal is active (`acting_as`, a context variable, so concurrent
invocations on other threads keep their own), the call's IAM action and resource ARNs are evaluated
(explicit Deny wins, else some Allow must match, else AccessDenied). Outside any principal (tests, the
CLI, the stack's own set-up) calls pass unchecked, as an administrator's would.

Conditions are not evaluated: an Allow with a Condition never matches and a Deny with one always does,
so the check errs on refusing. Presigned URLs are used by clients against moto directly and are not
checked here (AWS checks the signer's permissions; the signer is checked when it calls the API)."""

from __future__ import annotations

import contextvars
import copy
import fnmatch
import json
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlparse

from audiomixer_local.template import Template, referenced_ids

TASK_ROLE_ENV = "AUDIOMIXER_LOCAL_TASK_ROLE"
# The local gateway's @connections URL has no API id in its host name; a job subprocess learns it here.
WS_API_ID_ENV = "AUDIOMIXER_LOCAL_WS_API_ID"

# The AWS managed policies SAM attaches to function roles (documents as AWS publishes them). An unknown
# managed policy fails loudly rather than being treated as allowing or denying everything.
MANAGED_POLICIES: dict[str, list[dict[str, Any]]] = {
    "AWSLambdaBasicExecutionRole": [
        {
            "Effect": "Allow",
            "Action": ["logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents"],
            "Resource": "*",
        }
    ],
    "AWSXrayWriteOnlyAccess": [
        {
            "Effect": "Allow",
            "Action": [
                "xray:PutTraceSegments",
                "xray:PutTelemetryRecords",
                "xray:GetSamplingRules",
                "xray:GetSamplingTargets",
                "xray:GetSamplingStatisticSummaries",
            ],
            "Resource": "*",
        }
    ],
    "AWSLambdaSQSQueueExecutionRole": [
        {
            "Effect": "Allow",
            "Action": [
                "sqs:ReceiveMessage",
                "sqs:DeleteMessage",
                "sqs:GetQueueAttributes",
                "logs:CreateLogGroup",
                "logs:CreateLogStream",
                "logs:PutLogEvents",
            ],
            "Resource": "*",
        }
    ],
}

# S3 operations whose IAM action is not s3:<OperationName>.
_S3_ACTIONS = {
    "HeadObject": "s3:GetObject",
    "CopyObject": "s3:PutObject",
    "UploadPartCopy": "s3:PutObject",
    "HeadBucket": "s3:ListBucket",
    "ListObjects": "s3:ListBucket",
    "ListObjectsV2": "s3:ListBucket",
    "ListObjectVersions": "s3:ListBucketVersions",
    "CreateMultipartUpload": "s3:PutObject",
    "UploadPart": "s3:PutObject",
    "CompleteMultipartUpload": "s3:PutObject",
    "ListParts": "s3:ListMultipartUploadParts",
    "ListMultipartUploads": "s3:ListBucketMultipartUploads",
    "DeleteObjects": "s3:DeleteObject",
    "GetBucketLifecycleConfiguration": "s3:GetLifecycleConfiguration",
    "PutBucketLifecycleConfiguration": "s3:PutLifecycleConfiguration",
    "GetBucketCors": "s3:GetBucketCORS",
    "PutBucketCors": "s3:PutBucketCORS",
}
_BUCKET_LEVEL_S3 = {"s3:ListBucket", "s3:ListBucketVersions", "s3:ListBucketMultipartUploads"}
# Calls IAM never checks.
_UNCHECKED = {"sts:GetCallerIdentity"}
_ERROR_CODES = {"s3": "AccessDenied", "sqs": "AccessDenied", "execute-api": "ForbiddenException"}


@dataclass(frozen=True)
class Statement:
    effect: str
    actions: tuple[str, ...]
    resources: tuple[str, ...]
    conditional: bool = False

    def matches(self, action: str, resource: str) -> bool:
        return any(_glob(a, action, ignore_case=True) for a in self.actions) and any(
            _glob(r, resource) for r in self.resources
        )


def _glob(pattern: str, value: str, ignore_case: bool = False) -> bool:
    if ignore_case:
        pattern, value = pattern.lower(), value.lower()
    # IAM wildcards are * and ? only; fnmatch's [...] classes must stay literal.
    return fnmatch.fnmatchcase(value, pattern.replace("[", "[[]"))


@dataclass(frozen=True)
class Principal:
    """One function's (or the job role's) identity and policy statements."""

    name: str  # logical id of the function or role
    arn: str  # the assumed-role ARN AWS names in its AccessDenied message
    statements: tuple[Statement, ...]

    def allows(self, action: str, resource: str) -> bool:
        if any(
            s.effect == "Deny" and (s.conditional or s.matches(action, resource)) for s in self.statements
        ):
            return False
        return any(
            s.effect == "Allow" and not s.conditional and s.matches(action, resource) for s in self.statements
        )

    def to_json(self) -> str:
        return json.dumps(
            {
                "name": self.name,
                "arn": self.arn,
                "statements": [
                    [s.effect, list(s.actions), list(s.resources), s.conditional] for s in self.statements
                ],
            }
        )

    @classmethod
    def from_json(cls, text: str) -> Principal:
        data = json.loads(text)
        return cls(
            data["name"],
            data["arn"],
            tuple(Statement(e, tuple(a), tuple(r), bool(c)) for e, a, r, c in data["statements"]),
        )


def statements_of(document: dict[str, Any]) -> list[Statement]:
    raw = document.get("Statement") or []
    out = []
    for s in raw if isinstance(raw, list) else [raw]:
        if "NotAction" in s or "NotResource" in s:
            raise ValueError(f"the local IAM check does not evaluate NotAction/NotResource: {s}")
        actions = s.get("Action") or []
        resources = s.get("Resource") or []
        out.append(
            Statement(
                effect=str(s.get("Effect", "Allow")),
                actions=tuple(actions if isinstance(actions, list) else [actions]),
                resources=tuple(str(r) for r in (resources if isinstance(resources, list) else [resources])),
                conditional=bool(s.get("Condition")),
            )
        )
    return out


def managed_statements(arn: str) -> list[Statement]:
    name = str(arn).rsplit("/", 1)[-1]
    if name not in MANAGED_POLICIES:
        raise ValueError(f"the local IAM check does not know managed policy {arn}; add its document")
    return statements_of({"Statement": MANAGED_POLICIES[name]})


def sam_transform(t: Template) -> dict[str, Any]:
    """The template after SAM's transform (function roles made explicit); code locations are stand-ins."""
    import logging

    import boto3
    from samtranslator.parser.parser import Parser
    from samtranslator.translator.translator import Translator

    data = copy.deepcopy(t.data)
    for r in (data.get("Resources") or {}).values():
        props = r.setdefault("Properties", {}) if isinstance(r, dict) else {}
        if r.get("Type") == "AWS::Serverless::Function":
            if props.get("PackageType") == "Image":
                props["ImageUri"] = f"{t.account_id}.dkr.ecr.{t.region}.amazonaws.com/local:latest"
            else:
                props["CodeUri"] = "s3://local/code.zip"
        elif r.get("Type") == "AWS::Serverless::LayerVersion":
            props["ContentUri"] = "s3://local/layer.zip"
    parameters = {**t.parameters, **t.pseudo}
    # SAM's usage metrics are never published here; its warning about that is noise.
    logging.getLogger("samtranslator.metrics.metrics").setLevel(logging.ERROR)
    translator = Translator(None, Parser(), boto_session=boto3.session.Session(region_name=t.region))
    return translator.translate(data, parameters)


def role_principal(t: Template, role_lid: str, resources: dict[str, Any], session_name: str) -> Principal:
    """The statements of one AWS::IAM::Role (inline policies and managed ones), resolved locally."""
    props = resources[role_lid].get("Properties") or {}
    statements: list[Statement] = []
    for policy in props.get("Policies") or []:
        statements += statements_of(t.resolve(policy["PolicyDocument"]))
    for arn in t.resolve(props.get("ManagedPolicyArns") or []):
        statements += managed_statements(arn)
    role_name = props.get("RoleName") or f"{t.stack_name}-{role_lid}-local"
    arn = f"arn:aws:sts::{t.account_id}:assumed-role/{t.resolve(role_name)}/{session_name}"
    return Principal(role_lid, arn, tuple(statements))


def build_principals(t: Template, function_names: dict[str, str], role_ids: set[str]) -> dict[str, Principal]:
    """Per function logical id (and per role in `role_ids`, e.g. job roles): the principal its code runs
    as. Roles no local code runs as (an EC2 instance role) are not read."""
    transformed = sam_transform(t)
    resources = transformed.get("Resources") or {}
    out: dict[str, Principal] = {}
    for lid, name in function_names.items():
        role = (resources.get(lid, {}).get("Properties") or {}).get("Role")
        role_lid = next(iter(referenced_ids(role)), None) if role else None
        if role_lid is None or role_lid not in resources:
            raise ValueError(f"{lid}: no IAM role in the transformed template (Role: {role!r})")
        out[lid] = role_principal(t, role_lid, resources, name)
    for lid in sorted(role_ids):
        out[lid] = role_principal(t, lid, resources, lid)
    return out


# --------------------------------------------------------------------------- who is calling
_current: contextvars.ContextVar[Principal | None] = contextvars.ContextVar(
    "local_iam_principal", default=None
)
_process_default: Principal | None = None  # the Batch job subprocess runs as its task role throughout


def current() -> Principal | None:
    return _current.get() or _process_default


@contextmanager
def acting_as(principal: Principal | None) -> Iterator[None]:
    """AWS calls made in this context (and in tasks/threads that copy it) are checked as `principal`."""
    token = _current.set(principal)
    try:
        yield
    finally:
        _current.reset(token)


def run_as_process(principal: Principal) -> None:
    global _process_default
    _process_default = principal
    install()


# --------------------------------------------------------------------------- what a call needs
def requirements(
    service: str, operation: str, params: dict[str, Any], region: str, account: str
) -> list[tuple[str, str]]:
    """(IAM action, resource ARN) pairs one API call needs allowed."""
    if service == "s3":
        action = _S3_ACTIONS.get(operation, f"s3:{operation}")
        bucket_arn = f"arn:aws:s3:::{params.get('Bucket', '')}"
        if operation == "DeleteObjects":
            objects = (params.get("Delete") or {}).get("Objects") or []
            return [(action, f"{bucket_arn}/{o['Key']}") for o in objects]
        if "Key" not in params or action in _BUCKET_LEVEL_S3:
            return [(action, bucket_arn)]
        needs = [(action, f"{bucket_arn}/{params['Key']}")]
        if operation in ("CopyObject", "UploadPartCopy"):
            source = params.get("CopySource")
            if isinstance(source, dict):
                source_arn = f"arn:aws:s3:::{source['Bucket']}/{source['Key']}"
            else:
                source_arn = "arn:aws:s3:::" + str(source).lstrip("/").split("?")[0]
            needs.append(("s3:GetObject", source_arn))
        return needs
    if service == "dynamodb":
        action = f"dynamodb:{operation}"
        table_arn = f"arn:aws:dynamodb:{region}:{account}:table/"
        if operation in ("BatchGetItem", "BatchWriteItem"):
            return [(action, table_arn + name) for name in params.get("RequestItems") or {}]
        if operation in ("TransactWriteItems", "TransactGetItems"):
            needs = []
            for item in params.get("TransactItems") or []:
                ((kind, body),) = item.items()
                item_action = {
                    "Put": "PutItem",
                    "Update": "UpdateItem",
                    "Delete": "DeleteItem",
                    "ConditionCheck": "ConditionCheckItem",
                    "Get": "GetItem",
                }[kind]
                needs.append((f"dynamodb:{item_action}", table_arn + body["TableName"]))
            return needs
        if "TableName" in params:
            arn = table_arn + params["TableName"]
            if params.get("IndexName"):
                arn += f"/index/{params['IndexName']}"
            return [(action, arn)]
        return [(action, "*")]
    if service == "sqs":
        url = params.get("QueueUrl")
        name = urlparse(url).path.rstrip("/").rsplit("/", 1)[-1] if url else params.get("QueueName", "*")
        action = (
            f"sqs:{operation.removesuffix('Batch')}" if operation.endswith("Batch") else f"sqs:{operation}"
        )
        return [(action, f"arn:aws:sqs:{region}:{account}:{name}")]
    if service == "ssm":
        names = params.get("Names") or ([params["Name"]] if "Name" in params else [])
        return [
            (f"ssm:{operation}", f"arn:aws:ssm:{region}:{account}:parameter/{n.lstrip('/')}") for n in names
        ] or [(f"ssm:{operation}", "*")]
    if service == "batch":
        action = f"batch:{operation}"
        if operation == "SubmitJob":
            definition = str(params.get("jobDefinition", ""))
            if not definition.startswith("arn:"):
                definition = f"arn:aws:batch:{region}:{account}:job-definition/{definition}"
            queue = str(params.get("jobQueue", ""))
            if not queue.startswith("arn:"):
                queue = f"arn:aws:batch:{region}:{account}:job-queue/{queue}"
            return [(action, queue), (action, definition)]
        if operation in ("TerminateJob", "CancelJob"):
            return [(action, f"arn:aws:batch:{region}:{account}:job/{params.get('jobId', '')}")]
        return [(action, "*")]
    return [(f"{service}:{operation}", "*")]


def _management_requirements(
    client: Any, operation: str, params: dict[str, Any], account: str
) -> list[tuple[str, str]]:
    """execute-api:ManageConnections on arn:aws:execute-api:REGION:ACCT:API/STAGE/METHOD/@connections/ID"""
    endpoint = urlparse(client.meta.endpoint_url)
    api_id = (
        endpoint.hostname.split(".")[0]
        if endpoint.hostname and ".execute-api." in endpoint.hostname
        else None
    )
    api_id = api_id or _local_ws_api_id or "local"
    stage = endpoint.path.strip("/").split("/")[0] or "$default"
    method = {"PostToConnection": "POST", "GetConnection": "GET", "DeleteConnection": "DELETE"}.get(
        operation, "*"
    )
    arn = (
        f"arn:aws:execute-api:{client.meta.region_name}:{account}:{api_id}/{stage}/{method}/@connections/"
        f"{params.get('ConnectionId', '')}"
    )
    return [("execute-api:ManageConnections", arn)]


# --------------------------------------------------------------------------- the check
_installed = False
_install_lock = threading.Lock()
_local_ws_api_id: str | None = None  # the local gateway's endpoint has no API id in its host name


def set_websocket_api_id(api_id: str | None) -> None:
    global _local_ws_api_id
    _local_ws_api_id = api_id


def access_denied(client: Any, operation: str, principal: Principal, action: str, resource: str) -> Exception:
    prefix = client.meta.service_model.signing_name
    code = _ERROR_CODES.get(prefix, "AccessDeniedException")
    message = (
        f"User: {principal.arn} is not authorized to perform: {action} on resource: {resource} "
        f"because no identity-based policy allows the {action} action"
    )
    response = {
        "Error": {"Code": code, "Message": message},
        "ResponseMetadata": {"HTTPStatusCode": 403},
    }
    return client.exceptions.from_code(code)(response, operation)


def check(client: Any, operation: str, params: dict[str, Any]) -> None:
    principal = current()
    if principal is None:
        return
    service = client.meta.service_model.signing_name
    if f"{service}:{operation}" in _UNCHECKED:
        return
    account = principal.arn.split(":")[4]
    if client.meta.service_model.service_name == "apigatewaymanagementapi":
        needs = _management_requirements(client, operation, params, account)
    else:
        needs = requirements(service, operation, params, client.meta.region_name, account)
    for action, resource in needs:
        if not principal.allows(action, resource):
            raise access_denied(client, operation, principal, action, resource)


def install() -> None:
    """Route every botocore call through `check` (once per process; a no-op without a principal)."""
    global _installed
    from botocore.client import BaseClient

    with _install_lock:
        if _installed:
            return
        original = BaseClient._make_api_call  # type: ignore[attr-defined]

        def checked(self: Any, operation_name: str, api_params: dict[str, Any]) -> Any:
            check(self, operation_name, api_params)
            return original(self, operation_name, api_params)

        checked.__wrapped__ = original  # type: ignore[attr-defined]
        BaseClient._make_api_call = checked  # type: ignore[attr-defined]
        _installed = True


def principal_from_env() -> Principal | None:
    if os.environ.get(WS_API_ID_ENV):
        set_websocket_api_id(os.environ[WS_API_ID_ENV])
    text = os.environ.get(TASK_ROLE_ENV)
    return Principal.from_json(text) if text else None
