"""Create template.yaml's data plane (tables, queues + DLQs, the bucket and its ingest notification) in
LocalStack, named as the embedded local stack names them ({StackName}-{LogicalId}), and write the
AUDIOMIXER_* environment that points the code at them.

Runs inside the LocalStack container from ready.d/ (LocalStack's own interpreter has boto3 and PyYAML), or
from a host shell: AWS_ENDPOINT_URL=http://localhost:4566 python localstack/init/create_resources.py.
Only standard CloudFormation fields are read, so it follows template.yaml without a copy of its values.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import sys
from pathlib import Path
from typing import Any

import boto3
import yaml

STACK = os.environ.get("AUDIOMIXER_STACK_NAME", "audiomixer")
REGION = os.environ.get("AWS_DEFAULT_REGION", "us-east-1")


class _Loader(yaml.SafeLoader):
    pass


def _tag(loader: yaml.SafeLoader, suffix: str, node: yaml.Node) -> Any:
    if isinstance(node, yaml.ScalarNode):
        value: Any = loader.construct_scalar(node)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)
    if suffix == "Ref":
        return {"Ref": value}
    if suffix == "GetAtt" and isinstance(value, str):
        return {"Fn::GetAtt": value.split(".", 1)}
    return {f"Fn::{suffix}": value}


_Loader.add_multi_constructor("!", _tag)


class Stack:
    def __init__(self, template: dict[str, Any], account: str, endpoint: str | None) -> None:
        self.t = template
        self.account = account
        self.refs: dict[str, Any] = {}
        self.attrs: dict[str, dict[str, str]] = {}
        self.params: dict[str, Any] = {}
        for name, spec in (template.get("Parameters") or {}).items():
            default = spec.get("Default", "")
            kind = str(spec.get("Type", "String"))
            if kind == "CommaDelimitedList" or kind.startswith("List<"):
                default = [v.strip() for v in str(default).split(",")] if default else []
            self.params[name] = default
        kwargs: dict[str, Any] = {"region_name": REGION}
        if endpoint:
            kwargs["endpoint_url"] = endpoint
        # Any: the typed stubs would demand TypedDicts for dicts that come straight from the template
        self.ddb: Any = boto3.client("dynamodb", **kwargs)
        self.sqs: Any = boto3.client("sqs", **kwargs)
        self.s3: Any = boto3.client("s3", **kwargs)

    # -- intrinsics: just what the data-plane resources use
    def resolve(self, node: Any) -> Any:
        if isinstance(node, list):
            return [self.resolve(v) for v in node]
        if not isinstance(node, dict):
            return node
        if "Ref" in node:
            name = node["Ref"]
            pseudo = {"AWS::Region": REGION, "AWS::AccountId": self.account, "AWS::StackName": STACK}
            if name in pseudo:
                return pseudo[name]
            return self.params[name] if name in self.params else self.refs[name]
        if "Fn::GetAtt" in node:
            resource, attribute = node["Fn::GetAtt"]
            return self.attrs[resource][attribute]
        if "Fn::Sub" in node:
            return re.sub(
                r"\$\{([^}]+)\}", lambda m: str(self.resolve(_sub_ref(m.group(1)))), node["Fn::Sub"]
            )
        return {k: self.resolve(v) for k, v in node.items()}

    def of_type(self, kind: str) -> dict[str, dict[str, Any]]:
        return {k: v.get("Properties", {}) for k, v in self.t["Resources"].items() if v["Type"] == kind}

    # -- resources
    def tables(self) -> None:
        existing = set(self.ddb.list_tables()["TableNames"])
        for lid, p in self.of_type("AWS::DynamoDB::Table").items():
            name = p.get("TableName") or f"{STACK}-{lid}"
            self.refs[lid] = name
            if name not in existing:
                kwargs: dict[str, Any] = {
                    "TableName": name,
                    "BillingMode": "PAY_PER_REQUEST",
                    "AttributeDefinitions": p["AttributeDefinitions"],
                    "KeySchema": p["KeySchema"],
                }
                if p.get("GlobalSecondaryIndexes"):
                    kwargs["GlobalSecondaryIndexes"] = [
                        {k: g[k] for k in ("IndexName", "KeySchema", "Projection")}
                        for g in p["GlobalSecondaryIndexes"]
                    ]
                self.ddb.create_table(**kwargs)
                self.ddb.get_waiter("table_exists").wait(TableName=name)
            ttl = p.get("TimeToLiveSpecification")
            if ttl and name not in existing:
                self.ddb.update_time_to_live(TableName=name, TimeToLiveSpecification=ttl)

    def queues(self) -> None:
        queues = self.of_type("AWS::SQS::Queue")
        # DLQs first: the work queues' RedrivePolicy points at their ARNs.
        for lid in sorted(queues, key=lambda q: "RedrivePolicy" in queues[q]):
            p = queues[lid]
            name = p.get("QueueName") or f"{STACK}-{lid}"
            attributes: dict[str, str] = {
                key: str(p[key])
                for key in (
                    "VisibilityTimeout",
                    "MessageRetentionPeriod",
                    "DelaySeconds",
                    "ReceiveMessageWaitTimeSeconds",
                )
                if key in p
            }
            if "RedrivePolicy" in p:
                attributes["RedrivePolicy"] = json.dumps(self.resolve(p["RedrivePolicy"]))
            url = self.sqs.create_queue(QueueName=name, Attributes=attributes)["QueueUrl"]
            arn = self.sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"][
                "QueueArn"
            ]
            self.refs[lid] = url
            self.attrs[lid] = {"Arn": arn, "QueueName": name, "QueueUrl": url}

    def buckets(self) -> None:
        for lid, p in self.of_type("AWS::S3::Bucket").items():
            name = self.resolve(p.get("BucketName")) or f"{STACK}-{lid}".lower()
            self.refs[lid] = name
            self.attrs[lid] = {"Arn": f"arn:aws:s3:::{name}"}
            kwargs: dict[str, Any] = {"Bucket": name}
            if REGION != "us-east-1":
                kwargs["CreateBucketConfiguration"] = {"LocationConstraint": REGION}
            with contextlib.suppress(self.s3.exceptions.BucketAlreadyOwnedByYou):
                self.s3.create_bucket(**kwargs)
            if "PublicAccessBlockConfiguration" in p:
                self.s3.put_public_access_block(
                    Bucket=name, PublicAccessBlockConfiguration=p["PublicAccessBlockConfiguration"]
                )
            if "CorsConfiguration" in p:
                rules = self.resolve(p["CorsConfiguration"])["CorsRules"]
                self.s3.put_bucket_cors(
                    Bucket=name, CORSConfiguration={"CORSRules": [_cors_rule(r) for r in rules]}
                )
            if "LifecycleConfiguration" in p:
                self.s3.put_bucket_lifecycle_configuration(
                    Bucket=name,
                    LifecycleConfiguration={
                        "Rules": [_lifecycle_rule(r) for r in p["LifecycleConfiguration"]["Rules"]]
                    },
                )
            queue_configs = (p.get("NotificationConfiguration") or {}).get("QueueConfigurations") or []
            if queue_configs:
                self.s3.put_bucket_notification_configuration(
                    Bucket=name,
                    NotificationConfiguration={
                        "QueueConfigurations": [
                            {
                                "QueueArn": self.resolve(q["Queue"]),
                                "Events": [q["Event"]],
                                **(
                                    {"Filter": {"Key": {"FilterRules": q["Filter"]["S3Key"]["Rules"]}}}
                                    if "Filter" in q
                                    else {}
                                ),
                            }
                            for q in queue_configs
                        ]
                    },
                )

    def environment(self) -> dict[str, str]:
        variables = (self.t.get("Globals", {}).get("Function", {}).get("Environment", {}) or {}).get(
            "Variables", {}
        )
        env: dict[str, str] = {}
        for key, value in variables.items():
            try:
                resolved = self.resolve(value)
            except KeyError:
                continue  # APIs and Batch do not exist in LocalStack's data plane
            env[key] = resolved if isinstance(resolved, str) else json.dumps(resolved)
        return env


def _sub_ref(name: str) -> dict[str, Any]:
    if "." in name and not name.startswith("AWS::"):
        return {"Fn::GetAtt": name.split(".", 1)}
    return {"Ref": name}


def _cors_rule(rule: dict[str, Any]) -> dict[str, Any]:
    """CloudFormation's spelling of a CORS rule -> the S3 API's."""
    renames = {"ExposedHeaders": "ExposeHeaders", "MaxAge": "MaxAgeSeconds", "Id": "ID"}
    return {renames.get(k, k): (int(v) if k == "MaxAge" else v) for k, v in rule.items()}


def _lifecycle_rule(rule: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {
        "ID": rule.get("Id", "rule"),
        "Status": rule["Status"],
        "Filter": {"Prefix": rule.get("Prefix", "")},
    }
    if "ExpirationInDays" in rule:
        out["Expiration"] = {"Days": int(rule["ExpirationInDays"])}
    if "AbortIncompleteMultipartUpload" in rule:
        out["AbortIncompleteMultipartUpload"] = rule["AbortIncompleteMultipartUpload"]
    return out


def create(template_path: Path, endpoint: str | None, account: str = "000000000000") -> dict[str, str]:
    template = yaml.load(template_path.read_text(encoding="utf-8"), Loader=_Loader)
    stack = Stack(template, account, endpoint)
    stack.tables()
    stack.queues()
    stack.buckets()
    env = stack.environment()
    if endpoint:
        env["AWS_ENDPOINT_URL"] = endpoint
    env["AWS_DEFAULT_REGION"] = REGION
    return env


def main() -> None:
    template = Path(os.environ.get("AUDIOMIXER_TEMPLATE", "/etc/localstack/audiomixer/template.yaml"))
    endpoint = os.environ.get("AWS_ENDPOINT_URL", "http://localhost:4566")
    out = Path(os.environ.get("AUDIOMIXER_ENV_FILE", "/tmp/audiomixer.env"))
    env = create(template, endpoint, os.environ.get("AUDIOMIXER_ACCOUNT_ID", "000000000000"))
    text = "".join(f"{k}={v}\n" for k, v in sorted(env.items()))
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text)
    sys.stdout.write(f"audiomixer: resources created; environment written to {out}\n{text}")


if __name__ == "__main__":
    main()
