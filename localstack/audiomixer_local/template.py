"""Reads template.yaml (SAM/CloudFormation with short-form tags) and resolves the intrinsics the local
stack needs, so that every name, timeout and mapping comes from the one template and cannot drift."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

PSEUDO_DEFAULTS: dict[str, str] = {
    "AWS::Region": "us-east-1",
    "AWS::AccountId": "123456789012",
    "AWS::StackName": "audiomixer",
    "AWS::Partition": "aws",
    "AWS::URLSuffix": "amazonaws.com",
    "AWS::StackId": "arn:aws:cloudformation:us-east-1:123456789012:stack/audiomixer/local",
}

_NO_VALUE = object()  # AWS::NoValue: the property is dropped


class _CfnLoader(yaml.SafeLoader):
    """SafeLoader that turns `!Ref X` into {"Ref": X}, `!GetAtt A.B` into {"Fn::GetAtt": [A, B]}, ..."""


def _construct(tag: str) -> Callable[[yaml.SafeLoader, yaml.Node], Any]:
    def construct(loader: yaml.SafeLoader, node: yaml.Node) -> Any:
        if isinstance(node, yaml.ScalarNode):
            value: Any = loader.construct_scalar(node)
        elif isinstance(node, yaml.SequenceNode):
            value = loader.construct_sequence(node, deep=True)
        else:
            value = loader.construct_mapping(node, deep=True)
        if tag == "Ref":
            return {"Ref": value}
        if tag == "Condition":
            return {"Condition": value}
        if tag == "GetAtt" and isinstance(value, str):
            resource, _, attribute = value.partition(".")
            return {"Fn::GetAtt": [resource, attribute]}
        return {f"Fn::{tag}": value}

    return construct


for _tag in (
    "Ref",
    "Condition",
    "GetAtt",
    "Sub",
    "Join",
    "Select",
    "Split",
    "If",
    "Equals",
    "Not",
    "And",
    "Or",
    "FindInMap",
    "Base64",
    "GetAZs",
    "ImportValue",
    "Cidr",
    "Length",
    "ToJsonString",
):
    _CfnLoader.add_constructor(f"!{_tag}", _construct(_tag))


def load(path: str | Path) -> dict[str, Any]:
    """Parse a template file into plain dicts/lists with long-form intrinsics."""
    with open(path, encoding="utf-8") as fh:
        data = yaml.load(fh, Loader=_CfnLoader)
    if not isinstance(data, dict) or "Resources" not in data:
        raise ValueError(f"{path}: not a CloudFormation template (no Resources)")
    return data


class UnresolvableError(ValueError):
    """An intrinsic the local stack cannot resolve."""


@dataclass
class Template:
    """A loaded template plus what is needed to resolve intrinsics against local physical resources."""

    path: Path
    data: dict[str, Any]
    parameters: dict[str, str] = field(default_factory=dict)
    pseudo: dict[str, str] = field(default_factory=lambda: dict(PSEUDO_DEFAULTS))
    # logical id -> value of Ref / {attribute: value} of GetAtt; filled as resources are created
    refs: dict[str, str] = field(default_factory=dict)
    attrs: dict[str, dict[str, str]] = field(default_factory=dict)
    unset_parameters: list[str] = field(default_factory=list)

    @classmethod
    def from_file(
        cls, path: str | Path, *, parameters: Mapping[str, str] | None = None, **pseudo: str
    ) -> Template:
        path = Path(path).resolve()
        data = load(path)
        values: dict[str, str] = {}
        missing: list[str] = []
        for name, spec in (data.get("Parameters") or {}).items():
            if isinstance(spec, dict) and "Default" in spec:
                default = spec["Default"]
                values[name] = ",".join(map(str, default)) if isinstance(default, list) else str(default)
            else:
                # Deploy-time inputs (image URIs, subnets) mean nothing locally: empty unless given.
                values[name] = ""
                missing.append(name)
        values.update({k: str(v) for k, v in (parameters or {}).items()})
        t = cls(path=path, data=data, parameters=values)
        t.unset_parameters = [m for m in missing if m not in (parameters or {})]
        for key, value in pseudo.items():
            t.pseudo[f"AWS::{key}"] = value
        return t

    @property
    def root(self) -> Path:
        return self.path.parent

    @property
    def resources(self) -> dict[str, dict[str, Any]]:
        return dict(self.data.get("Resources") or {})

    def of_type(self, *types: str) -> dict[str, dict[str, Any]]:
        return {lid: r for lid, r in self.resources.items() if isinstance(r, dict) and r.get("Type") in types}

    def props(self, logical_id: str) -> dict[str, Any]:
        return dict(self.resources[logical_id].get("Properties") or {})

    @property
    def globals_function(self) -> dict[str, Any]:
        return dict((self.data.get("Globals") or {}).get("Function") or {})

    @property
    def stack_name(self) -> str:
        return self.pseudo["AWS::StackName"]

    @property
    def region(self) -> str:
        return self.pseudo["AWS::Region"]

    @property
    def account_id(self) -> str:
        return self.pseudo["AWS::AccountId"]

    # --- conditions -------------------------------------------------------------------------------
    def condition(self, name: str) -> bool:
        conditions = self.data.get("Conditions") or {}
        if name not in conditions:
            raise UnresolvableError(f"unknown condition {name}")
        return bool(self._condition_value(conditions[name]))

    def _condition_value(self, node: Any) -> Any:
        if isinstance(node, dict) and len(node) == 1:
            ((key, arg),) = node.items()
            if key == "Fn::Equals":
                a, b = (self.resolve(x) for x in arg)
                return str(a) == str(b)
            if key == "Fn::Not":
                return not self._condition_value(arg[0])
            if key == "Fn::And":
                return all(self._condition_value(x) for x in arg)
            if key == "Fn::Or":
                return any(self._condition_value(x) for x in arg)
            if key == "Condition":
                return self.condition(arg)
        return self.resolve(node)

    # --- intrinsics -------------------------------------------------------------------------------
    def resolve(self, node: Any) -> Any:
        """Resolve every intrinsic in `node`; AWS::NoValue entries are dropped."""
        value = self._resolve(node)
        return None if value is _NO_VALUE else value

    def _resolve(self, node: Any) -> Any:
        if isinstance(node, list):
            return [v for v in (self._resolve(x) for x in node) if v is not _NO_VALUE]
        if not isinstance(node, dict):
            return node
        if len(node) == 1:
            ((key, arg),) = node.items()
            handler = _INTRINSICS.get(key)
            if handler is not None:
                return handler(self, arg)
        return {k: v for k, v in ((k, self._resolve(v)) for k, v in node.items()) if v is not _NO_VALUE}

    def ref(self, name: str) -> Any:
        """Ref of a pseudo parameter, parameter (list types split on commas) or created resource."""
        if name == "AWS::NoValue":
            return _NO_VALUE
        if name in self.pseudo:
            return self.pseudo[name]
        if name in self.parameters:
            value = self.parameters[name]
            kind = str(((self.data.get("Parameters") or {}).get(name) or {}).get("Type", "String"))
            if kind == "CommaDelimitedList" or kind.startswith("List<"):
                return [v.strip() for v in value.split(",")] if value else []
            return value
        if name in self.refs:
            return self.refs[name]
        raise UnresolvableError(
            f"!Ref {name}: no local value (parameter without default, or resource not created)"
        )

    def get_att(self, resource: str, attribute: str) -> str:
        try:
            return self.attrs[resource][attribute]
        except KeyError:
            raise UnresolvableError(f"!GetAtt {resource}.{attribute}: no local value") from None

    def sub(self, arg: Any) -> str:
        if isinstance(arg, list):
            text, variables = arg[0], {k: self.resolve(v) for k, v in (arg[1] or {}).items()}
        else:
            text, variables = arg, {}

        def replace(match: re.Match[str]) -> str:
            name = match.group(1)
            if name.startswith("!"):  # ${!Literal} escapes
                return "${" + name[1:] + "}"
            if name in variables:
                return str(variables[name])
            if "." in name and not name.startswith("AWS::"):
                resource, _, attribute = name.partition(".")
                return str(self.get_att(resource, attribute))
            return str(self.ref(name))

        return re.sub(r"\$\{([^}]+)\}", replace, str(text))


def _fn_if(t: Template, arg: list[Any]) -> Any:
    name, when_true, when_false = arg
    return t._resolve(when_true if t.condition(name) else when_false)


def _fn_join(t: Template, arg: list[Any]) -> str:
    sep, items = arg
    return str(sep).join(str(x) for x in t.resolve(items))


def _fn_select(t: Template, arg: list[Any]) -> Any:
    index, items = arg
    return t.resolve(items)[int(t.resolve(index))]


def _fn_split(t: Template, arg: list[Any]) -> list[str]:
    sep, text = arg
    return str(t.resolve(text)).split(sep)


def _fn_get_att(t: Template, arg: Any) -> str:
    if isinstance(arg, str):
        arg = arg.split(".", 1)
    return t.get_att(str(arg[0]), str(t.resolve(arg[1])))


def _fn_find_in_map(t: Template, arg: list[Any]) -> Any:
    name, top, second = (t.resolve(x) for x in arg)
    return t.data["Mappings"][name][top][second]


def _unsupported(name: str) -> Callable[[Template, Any], Any]:
    def fail(_t: Template, _arg: Any) -> Any:
        raise UnresolvableError(f"{name} is not resolved by the local stack")

    return fail


_INTRINSICS: dict[str, Callable[[Template, Any], Any]] = {
    "Ref": lambda t, a: t.ref(a),
    "Fn::GetAtt": _fn_get_att,
    "Fn::Sub": lambda t, a: t.sub(a),
    "Fn::If": _fn_if,
    "Fn::Join": _fn_join,
    "Fn::Select": _fn_select,
    "Fn::Split": _fn_split,
    "Fn::FindInMap": _fn_find_in_map,
    "Fn::Equals": lambda t, a: t._condition_value({"Fn::Equals": a}),
    "Fn::Not": lambda t, a: t._condition_value({"Fn::Not": a}),
    "Fn::And": lambda t, a: t._condition_value({"Fn::And": a}),
    "Fn::Or": lambda t, a: t._condition_value({"Fn::Or": a}),
    "Condition": lambda t, a: t.condition(a),
    "Fn::GetAZs": lambda t, a: [f"{t.region}a", f"{t.region}b"],
    "Fn::ImportValue": _unsupported("Fn::ImportValue"),
    "Fn::Base64": _unsupported("Fn::Base64"),
    "Fn::Cidr": _unsupported("Fn::Cidr"),
}


def referenced_ids(node: Any) -> set[str]:
    """Logical ids (or parameter names) that an unresolved node refers to via Ref/GetAtt/Sub."""
    found: set[str] = set()
    if isinstance(node, list):
        for x in node:
            found |= referenced_ids(x)
    elif isinstance(node, dict):
        for key, arg in node.items():
            if key == "Ref" and isinstance(arg, str):
                found.add(arg)
            elif key == "Fn::GetAtt":
                found.add(arg.split(".")[0] if isinstance(arg, str) else str(arg[0]))
            elif key == "Fn::Sub":
                text = arg[0] if isinstance(arg, list) else arg
                found |= {m.split(".")[0] for m in re.findall(r"\$\{([^}!]+)\}", str(text))}
                if isinstance(arg, list) and len(arg) > 1:
                    found |= referenced_ids(arg[1])
            else:
                found |= referenced_ids(arg)
    return found
