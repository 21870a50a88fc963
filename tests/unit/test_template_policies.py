"""Every function's IAM policy covers the AWS calls its code makes: a static check.

From each function's handler (functions/<dir>/app.py), follow the functions it calls or passes on,
through the audiomixer package, and collect what they do to AWS: boto3 client operations (by botocore's
own operation names), the tables behind the PynamoDB models and settings they touch, and the queues they
send to. Then expand the function's policies (SAM's own policy templates, plus inline statements) and
check each need is granted on the right resource."""

from __future__ import annotations

import ast
import fnmatch
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import botocore.session
import pytest
import samtranslator
from botocore import xform_name
from cfnlint.decode import decode_str

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "layers" / "shared" / "audiomixer"
TEMPLATE: dict[str, Any] = json.loads(
    json.dumps(decode_str((ROOT / "template.yaml").read_text(encoding="utf-8"))[0], default=str)
)
RESOURCES: dict[str, Any] = TEMPLATE["Resources"]
GLOBAL_ENV: dict[str, Any] = TEMPLATE["Globals"]["Function"]["Environment"]["Variables"]
# Services whose client calls a function makes directly (DynamoDB goes through PynamoDB models).
SERVICES = {
    "s3": "s3",
    "sqs": "sqs",
    "batch": "batch",
    "ssm": "ssm",
    "apigatewaymanagementapi": "execute-api",
}
# Where an S3 API operation is authorised by another action than its own name.
S3_ACTIONS = {
    "head_object": ["s3:GetObject"],
    "list_objects_v2": ["s3:ListBucket"],
    "delete_objects": ["s3:DeleteObject"],
    "copy_object": ["s3:GetObject", "s3:PutObject"],
}


def _operations() -> dict[str, str]:
    """botocore operation (snake_case) -> IAM action, for the services above."""
    session = botocore.session.get_session()
    ops: dict[str, str] = {}
    for service, prefix in SERVICES.items():
        for name in session.get_service_model(service).operation_names:
            action = "execute-api:ManageConnections" if prefix == "execute-api" else f"{prefix}:{name}"
            ops[xform_name(name)] = action
    return ops


OPERATIONS = _operations()


# ------------------------------------------------------------------------------------ the code side
@dataclass
class Function:
    module: str
    node: ast.AST
    edges: set[str] = field(default_factory=set)  # qualified names of functions it calls or passes on


@dataclass
class Needs:
    actions: set[str] = field(default_factory=set)
    tables: set[str] = field(default_factory=set)  # settings fields: projects_table, ...
    queues: set[str] = field(default_factory=set)  # settings fields: analyse_queue_url, ...


def _module_name(path: Path) -> str:
    return ".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts).removesuffix(".__init__")


def _imports(tree: ast.Module, module: str) -> dict[str, str]:
    """Local name -> qualified name, for every import in the module (at any depth)."""
    names: dict[str, str] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for a in node.names:
                names[a.asname or a.name.split(".")[0]] = a.name if a.asname else a.name.split(".")[0]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(module.split(".")[: -node.level] + ([base] if base else []))
            for a in node.names:
                names[a.asname or a.name] = f"{base}.{a.name}"
    return names


def _index() -> tuple[dict[str, Function], dict[str, dict[str, str]]]:
    """Every function, and every module-level object (`app = create_app()`, `router = APIRouter()`), by
    qualified name, with the names each refers to. A function registered by a decorator on a module-level
    object (a route on `router`) is reached through that object."""
    functions: dict[str, Function] = {}
    imports: dict[str, dict[str, str]] = {}
    registered: list[tuple[str, str]] = []  # (object, function it registers)
    paths = [*PACKAGE.rglob("*.py"), *(ROOT / "functions").glob("*/app.py")]
    for path in paths:
        module = _module_name(path) if PACKAGE in path.parents else f"functions.{path.parent.name}.app"
        tree = ast.parse(path.read_text(encoding="utf-8"))
        imports[module] = _imports(tree, module)
        for node in ast.walk(tree):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                functions.setdefault(f"{module}.{node.name}", Function(module, node))
        for n in tree.body:
            targets = (
                n.targets if isinstance(n, ast.Assign) else [n.target] if isinstance(n, ast.AnnAssign) else []
            )
            for t in targets:
                if isinstance(t, ast.Name):
                    functions.setdefault(f"{module}.{t.id}", Function(module, n))
            if isinstance(n, ast.FunctionDef):
                for decorator in n.decorator_list:
                    for name in ast.walk(decorator):
                        if isinstance(name, ast.Name):
                            registered.append((f"{module}.{name.id}", f"{module}.{n.name}"))
    defined = {q.rsplit(".", 1)[1] for q in functions}
    for fn in functions.values():
        local = imports[fn.module]
        for node in ast.walk(fn.node):
            target: str | None = None
            if isinstance(node, ast.Name):
                target = local.get(node.id, f"{fn.module}.{node.id}")
            elif isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name):
                owner = local.get(node.value.id)
                if owner:
                    target = f"{owner}.{node.attr}"
                elif node.attr in defined:  # a method of something of ours: any def of that name here
                    target = f"{fn.module}.{node.attr}"
            if target in functions:
                fn.edges.add(target)
            elif target in imports:  # a module handed around (`for module in (projects, ...)`)
                fn.edges |= {obj for obj, _ in registered if obj.rsplit(".", 1)[0] == target}
    for obj, function in registered:
        if obj in functions:
            functions[obj].edges.add(function)
    return functions, imports


FUNCTIONS, IMPORTS = _index()


def _model_tables() -> dict[str, str]:
    """Model qualified name -> its settings field, from store.models.configure's mapping."""
    tree = ast.parse((PACKAGE / "store" / "models.py").read_text(encoding="utf-8"))
    configure = next(n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == "configure")
    mapping = next(n for n in ast.walk(configure) if isinstance(n, ast.Dict))
    return {
        f"audiomixer.store.models.{k.id}": v.attr
        for k, v in zip(mapping.keys, mapping.values, strict=True)
        if isinstance(k, ast.Name) and isinstance(v, ast.Attribute)
    }


MODEL_TABLES = _model_tables()
SETTINGS_FIELDS = {
    n.target.id
    for n in ast.walk(ast.parse((PACKAGE / "settings.py").read_text(encoding="utf-8")))
    if isinstance(n, ast.AnnAssign) and isinstance(n.target, ast.Name)
}


# A model named in a function that calls one of these touches its table (a model merely listed in a
# lookup table does not).
PYNAMODB_CALLS = {"get", "query", "scan", "count", "batch_get", "save", "update", "delete", "refresh"}


def _calls_pynamodb(node: ast.AST) -> bool:
    return any(
        isinstance(n, ast.Call) and isinstance(n.func, ast.Attribute) and n.func.attr in PYNAMODB_CALLS
        for n in ast.walk(node)
    )


SENDS = {"send", "send_message", "send_message_batch"}


def _needs_of(fn: Function) -> Needs:
    needs = Needs()
    local = IMPORTS[fn.module]
    for node in ast.walk(fn.node):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            op = node.func.attr
            first = node.args[0].value if node.args and isinstance(node.args[0], ast.Constant) else None
            if op == "generate_presigned_url" and isinstance(first, str):
                needs.actions |= set(S3_ACTIONS.get(first, [OPERATIONS[first]]))
            elif op == "generate_presigned_post":
                needs.actions.add("s3:PutObject")
            elif op == "get_paginator" and isinstance(first, str):
                needs.actions |= set(S3_ACTIONS.get(first, [OPERATIONS[first]]))
            elif op in S3_ACTIONS:
                needs.actions |= set(S3_ACTIONS[op])
            elif op in OPERATIONS:
                needs.actions.add(OPERATIONS[op])
        elif isinstance(node, ast.Name) and local.get(node.id) in MODEL_TABLES and _calls_pynamodb(fn.node):
            needs.tables.add(MODEL_TABLES[local[node.id]])
        elif (
            isinstance(node, ast.Attribute) and node.attr in SETTINGS_FIELDS and node.attr.endswith("_table")
        ):
            needs.tables.add(node.attr)
        if isinstance(node, ast.Call) and getattr(node.func, "attr", getattr(node.func, "id", "")) in SENDS:
            for arg in [*node.args, *(k.value for k in node.keywords)]:
                if isinstance(arg, ast.Attribute) and arg.attr.endswith("_queue_url"):
                    needs.queues.add(arg.attr)  # a queue this function sends to
    return needs


def code_needs(entry: str) -> Needs:
    """What the function whose handler module is `entry` may do, over everything it reaches."""
    todo, seen, total = [f"{entry}.handler"], set(), Needs()
    while todo:
        name = todo.pop()
        if name in seen or name not in FUNCTIONS:
            continue
        seen.add(name)
        needs = _needs_of(FUNCTIONS[name])
        total.actions |= needs.actions
        total.tables |= needs.tables
        total.queues |= needs.queues
        todo += FUNCTIONS[name].edges
    return total


# ------------------------------------------------------------------------------- the template side
_SAM_TEMPLATES = json.loads(
    (Path(samtranslator.__file__).parent / "policy_templates_data" / "policy_templates.json").read_text()
)["Templates"]


def _env_target(field_name: str) -> str:
    """The logical id the environment variable of a settings field refers to (AUDIOMIXER_X: !Ref Id)."""
    node = GLOBAL_ENV[f"AUDIOMIXER_{field_name.upper()}"]
    return str(node["Ref"])


def _ref(node: Any) -> str | None:
    if isinstance(node, dict) and "Ref" in node:
        return str(node["Ref"])
    if isinstance(node, dict) and "Fn::GetAtt" in node:
        value = node["Fn::GetAtt"]
        return str((value.split(".") if isinstance(value, str) else value)[0])
    return None


def granted(fn: str) -> list[tuple[set[str], str | None]]:
    """(actions, the logical id they are scoped to, or None for any/other) of every policy."""
    out: list[tuple[set[str], str | None]] = []
    for policy in RESOURCES[fn]["Properties"].get("Policies", []):
        for name, args in policy.items():
            if name == "Statement":
                for statement in args:
                    actions = statement["Action"]
                    out.append((set(actions if isinstance(actions, list) else [actions]), None))
            elif name in _SAM_TEMPLATES:
                target = next((_ref(v) for v in (args or {}).values()), None)
                for statement in _SAM_TEMPLATES[name]["Definition"]["Statement"]:
                    actions = statement["Action"]
                    out.append((set(actions if isinstance(actions, list) else [actions]), target))
    return out


def allows(grants: list[tuple[set[str], str | None]], action: str, resource: str | None = None) -> bool:
    return any(
        any(fnmatch.fnmatch(action, pattern) for pattern in actions)
        and (resource is None or target == resource)
        for actions, target in grants
    )


LAMBDAS = {
    fn: Path(
        res["Properties"].get("CodeUri") or f"functions/{res['Metadata']['DockerBuildArgs']['FUNCTION']}"
        if res["Properties"].get("PackageType") != "Image"
        else res["Properties"]["ImageConfig"]["Command"][0].rsplit("/", 1)[0]
    ).parts[-1]
    for fn, res in RESOURCES.items()
    if res["Type"] == "AWS::Serverless::Function"
}


@pytest.mark.parametrize("fn", sorted(LAMBDAS))
def test_each_functions_policy_covers_the_calls_its_code_makes(fn: str) -> None:
    needs = code_needs(f"functions.{LAMBDAS[fn]}.app")
    grants = granted(fn)
    missing = [a for a in sorted(needs.actions) if not allows(grants, a)]
    assert not missing, f"{fn} calls AWS without permission for {missing}"
    for table in sorted(needs.tables):
        assert allows(grants, "dynamodb:GetItem", _env_target(table)), (
            f"{fn} uses {table} without a policy on it"
        )
    for queue in sorted(needs.queues):
        assert allows(grants, "sqs:SendMessage", _env_target(queue)), (
            f"{fn} sends to {queue} without a policy"
        )


def test_the_check_sees_the_calls_it_should() -> None:
    """The analysis itself: known calls of known functions are found (so a pass above means something)."""
    ingest = code_needs("functions.ingest.app")
    assert {"s3:GetObject", "s3:PutObject", "s3:DeleteObject", "sqs:SendMessage"} <= ingest.actions
    assert {"projects_table", "sounds_table"} <= ingest.tables
    assert {"separate_queue_url", "analyse_queue_url"} <= ingest.queues
    assert "batch:SubmitJob" in code_needs("functions.dispatch.app").actions
    assert "execute-api:ManageConnections" in code_needs("functions.ws_sync.app").actions
    assert "ssm:GetParameter" in code_needs("functions.api.app").actions
