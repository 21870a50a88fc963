"""`audiomixer keys create --stack NAME` mints a key against a deployed stack: the API-keys table from the
stack's outputs, the pepper from the SSM parameter the stack names, never a leftover local stack.json."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws

from audiomixer_tools.cli import keys_main

STACK_TEMPLATE = {
    "Parameters": {"ApiKeyPepperParameterName": {"Type": "String", "Default": "/audiomixer/api-key-pepper"}},
    "Resources": {
        "ApiKeysTable": {
            "Type": "AWS::DynamoDB::Table",
            "Properties": {
                "BillingMode": "PAY_PER_REQUEST",
                "AttributeDefinitions": [{"AttributeName": "key_hash", "AttributeType": "S"}],
                "KeySchema": [{"AttributeName": "key_hash", "KeyType": "HASH"}],
            },
        }
    },
    "Outputs": {"ApiKeysTableName": {"Value": {"Ref": "ApiKeysTable"}}},
}


def test_keys_create_with_stack_uses_the_deployed_tables_and_pepper(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from audiomixer import auth
    from audiomixer import aws as aws_clients
    from audiomixer.store.models import ApiKey

    # A leftover local stack file that would send the key to a stopped local stack.
    stale = tmp_path / "stack.json"
    stale.write_text(
        json.dumps({"env": {"AWS_ENDPOINT_URL": "http://127.0.0.1:9", "AUDIOMIXER_API_KEYS_TABLE": "x"}})
    )
    monkeypatch.setenv("AUDIOMIXER_DATA_DIR", str(tmp_path))
    for name in ("AUDIOMIXER_API_KEYS_TABLE", "AUDIOMIXER_API_KEY_PEPPER_PARAMETER", "AWS_ENDPOINT_URL"):
        monkeypatch.delenv(name, raising=False)
    with mock_aws():
        boto3.client("cloudformation").create_stack(
            StackName="prod-mixer",
            TemplateBody=json.dumps(STACK_TEMPLATE),
            Parameters=[{"ParameterKey": "ApiKeyPepperParameterName", "ParameterValue": "/prod/pepper"}],
        )
        boto3.client("ssm").put_parameter(Name="/prod/pepper", Value="deployed-pepper", Type="SecureString")
        try:
            assert keys_main(["create", "--stack", "prod-mixer", "--tenant", "acme"]) == 0
            out = capsys.readouterr()
            key = out.out.strip()
            table: Any = ApiKey.Meta.table_name
            assert table.startswith("prod-mixer-ApiKeysTable") and f"table {table}" in out.err
            assert auth.pepper() == "deployed-pepper"
            assert auth.authenticate(key).tenant_id == "acme"  # stored in the deployed table, peppered
            assert "stack.json" not in out.err
        finally:
            monkeypatch.undo()
            aws_clients.reset()


def test_keys_create_for_a_missing_stack_says_so(capsys: pytest.CaptureFixture[str]) -> None:
    with mock_aws(), pytest.raises(SystemExit, match="cannot read stack 'nope'"):
        keys_main(["create", "--stack", "nope", "--tenant", "acme"])
