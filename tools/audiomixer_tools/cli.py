"""The `audiomixer` command. Each subcommand lives in its own module and parses its own arguments, so
`audiomixer --help` stays fast (nothing heavy is imported until a subcommand runs)."""

from __future__ import annotations

import argparse
import importlib
import json
import os
import sys
from pathlib import Path

COMMANDS: dict[str, tuple[str, str]] = {
    "dev": (
        "audiomixer_local.cli:dev_main",
        "run the whole service locally (AWS emulation, API, workers, WebSocket)",
    ),
    "status": (
        "audiomixer_local.cli:status_main",
        "queue depths, DLQ depths and Batch jobs of the local stack",
    ),
    "invoke": (
        "audiomixer_local.cli:invoke_main",
        "run one function's handler with an event file (sam local invoke's twin)",
    ),
    "dlq": ("audiomixer_local.cli:dlq_main", "list or redrive a dead-letter queue of the local stack"),
    "upload": ("audiomixer_tools.client_cli:upload_main", "upload a song or --stems DIR; follow it to ready"),
    "styles": ("audiomixer_tools.client_cli:styles_main", "add style sounds to your library"),
    "mix": ("audiomixer_tools.client_cli:mix_main", "render a mix (--style drums=SOUND ...), -o FILE"),
    "watch": ("audiomixer_tools.client_cli:watch_main", "follow a project, mix or sound over the WebSocket"),
    "download": ("audiomixer_tools.client_cli:download_main", "download a completed mix"),
    "keys": ("audiomixer_tools.cli:keys_main", "create or revoke API keys"),
    "remix": ("audiomixer_tools.remix:main", "separate/analyse/render/mix local files in one process"),
    "bench": (
        "audiomixer_tools.cli:bench_main",
        "benchmarks: separate, render, analyse, load, quality, cold-start",
    ),
}
BENCHES = {
    "separate": "audiomixer_tools.bench.separate:main",
    "render": "audiomixer_tools.bench.render:main",
    "analyse": "audiomixer_tools.bench.analyse:main",
    "load": "audiomixer_tools.bench.load:main",
    "quality": "audiomixer_tools.bench.quality:main",
    "cold-start": "audiomixer_tools.bench.cold_start:main",
}


def _call(target: str, argv: list[str]) -> int:
    module_name, func_name = target.split(":")
    return int(getattr(importlib.import_module(module_name), func_name)(argv) or 0)


def use_local_stack_env(data_dir: str | None) -> bool:
    """Point this process at a running `audiomixer dev` stack (its stack.json), if there is one."""
    path = Path(data_dir or os.environ.get("AUDIOMIXER_DATA_DIR", ".audiomixer")) / "stack.json"
    if not path.exists():
        return False
    os.environ.update({k: str(v) for k, v in json.loads(path.read_text()).get("env", {}).items()})
    from audiomixer import aws

    aws.reset()
    return True


def use_deployed_stack_env(stack_name: str, region: str | None) -> str:
    """Point this process at a deployed CloudFormation stack: the API-keys table from its outputs and the
    pepper's SSM parameter from its parameters (settings' defaults are the local names, not these).
    Returns the table name; raises SystemExit with a message when the stack cannot be used."""
    import boto3
    from botocore.exceptions import BotoCoreError, ClientError

    # The deployed stack is in AWS: a local endpoint left in the environment must not redirect it.
    for name in [k for k in os.environ if k.startswith("AWS_ENDPOINT_URL")]:
        del os.environ[name]
    if region:
        os.environ["AWS_REGION"] = os.environ["AWS_DEFAULT_REGION"] = region
    try:
        cfn = boto3.client("cloudformation", region_name=region) if region else boto3.client("cloudformation")
        (stack,) = cfn.describe_stacks(StackName=stack_name)["Stacks"]
    except (BotoCoreError, ClientError) as exc:
        raise SystemExit(f"error: cannot read stack {stack_name!r}: {exc}") from None
    outputs = {o["OutputKey"]: o["OutputValue"] for o in stack.get("Outputs") or []}
    parameters = {p["ParameterKey"]: p.get("ParameterValue", "") for p in stack.get("Parameters") or []}
    table = outputs.get("ApiKeysTableName")
    if not table:
        raise SystemExit(f"error: stack {stack_name!r} has no ApiKeysTableName output (is it this service?)")
    os.environ["AUDIOMIXER_API_KEYS_TABLE"] = table
    pepper_parameter = parameters.get("ApiKeyPepperParameterName") or "/audiomixer/api-key-pepper"
    os.environ["AUDIOMIXER_API_KEY_PEPPER_PARAMETER"] = pepper_parameter
    from audiomixer import aws

    aws.reset()
    return table


def keys_main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="audiomixer keys", description="Manage API keys (shown once, stored hashed)."
    )
    sub = parser.add_subparsers(dest="action", required=True)
    create = sub.add_parser("create", help="create a key for a tenant and print it once")
    create.add_argument("--tenant", required=True, help="tenant id: lowercase letters, digits and '-'")
    create.add_argument("--label", default=None)
    revoke = sub.add_parser("revoke", help="revoke a key")
    revoke.add_argument("key")
    for p in (create, revoke):
        target = p.add_mutually_exclusive_group()
        target.add_argument(
            "--stack",
            default=None,
            help="a deployed CloudFormation stack: its API-keys table and SSM pepper (needs AWS credentials)",
        )
        target.add_argument(
            "--data-dir",
            default=None,
            help="local stack data dir (default .audiomixer); "
            "without a running local stack the AWS environment is used",
        )
        p.add_argument("--region", default=None, help="the deployed stack's region (with --stack)")
    args = parser.parse_args(argv)
    if args.stack:
        table = use_deployed_stack_env(args.stack, args.region)
        print(f"stack {args.stack}: table {table}", file=sys.stderr)
    elif use_local_stack_env(args.data_dir):
        print(f"local stack: {Path(args.data_dir or '.audiomixer') / 'stack.json'}", file=sys.stderr)
    from audiomixer import auth

    if args.action == "create":
        try:
            key = auth.create_api_key(args.tenant, label=args.label)
        except ValueError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        print(key)
        return 0
    if not auth.revoke_api_key(args.key):
        print("error: no such key", file=sys.stderr)
        return 2
    return 0


def bench_main(argv: list[str]) -> int:
    if not argv or argv[0] not in BENCHES:
        print(f"usage: audiomixer bench {{{','.join(BENCHES)}}} [options]", file=sys.stderr)
        return 2
    return _call(BENCHES[argv[0]], argv[1:])


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["--version"]:
        from audiomixer_tools.remix import version

        print(f"audiomixer {version()}")
        return 0
    if not argv or argv[0] in ("-h", "--help") or argv[0] not in COMMANDS:
        width = max(map(len, COMMANDS))
        print("usage: audiomixer COMMAND [options]\n\ncommands:")
        for name, (_, text) in COMMANDS.items():
            print(f"  {name:<{width}}  {text}")
        print("\n`audiomixer COMMAND --help` for a command's options.")
        return 0 if argv and argv[0] in ("-h", "--help") else 2
    return _call(COMMANDS[argv[0]][0], argv[1:])


if __name__ == "__main__":
    sys.exit(main())
