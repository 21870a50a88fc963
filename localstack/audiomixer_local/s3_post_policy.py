"""Presigned POST policies, checked locally as S3 checks them. moto stores whatever a browser-style POST
sends; S3 verifies the form's signature and every condition of its policy (exact key, content type,
content-length-range, expiry). Without this the local stack would accept a form posted with another key
or a larger file than the API allowed, which AWS refuses."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import os
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

_original: Callable[..., Any] | None = None
# moto adds BucketName to the parsed form itself; S3 never sees such a field.
_EXEMPT = {"policy", "x-amz-signature", "file", "bucketname"}


class PolicyViolation(Exception):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code = status, code


def _signing_key(secret: str, date: str, region: str, service: str) -> bytes:
    key = f"AWS4{secret}".encode()
    for part in (date, region, service, "aws4_request"):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    return key


def check(
    fields: dict[str, str], bucket: str, body_size: int, secret: str, now: datetime | None = None
) -> None:
    """Raise PolicyViolation unless the form's signature and policy admit this upload."""
    encoded = fields.get("policy")
    if not encoded:
        return  # an unsigned POST is moto's own business (tests of moto itself); ours are always signed
    signature, credential = fields.get("x-amz-signature", ""), fields.get("x-amz-credential", "")
    parts = credential.split("/")
    if len(parts) != 5:
        raise PolicyViolation(403, "AccessDenied", "malformed x-amz-credential")
    expected = hmac.new(_signing_key(secret, parts[1], parts[2], parts[3]), encoded.encode(), hashlib.sha256)
    if not hmac.compare_digest(expected.hexdigest(), signature):
        raise PolicyViolation(403, "SignatureDoesNotMatch", "the form's signature does not match its policy")
    try:
        policy = json.loads(base64.b64decode(encoded))
    except (binascii.Error, ValueError):
        raise PolicyViolation(400, "InvalidPolicyDocument", "the policy is not base64 JSON") from None
    expiration = datetime.fromisoformat(str(policy.get("expiration", "")).replace("Z", "+00:00"))
    if (now or datetime.now(UTC)) > expiration:
        raise PolicyViolation(403, "AccessDenied", "the form's policy has expired")
    values = {k.lower(): v for k, v in fields.items()} | {"bucket": bucket}
    covered: set[str] = set()
    for condition in policy.get("conditions", []):
        if isinstance(condition, dict):
            for name, value in condition.items():
                covered.add(name.lower())
                if values.get(name.lower()) != value:
                    raise PolicyViolation(
                        403, "AccessDenied", f"policy condition failed: {name} must be {value!r}"
                    )
        elif condition and condition[0] == "content-length-range":
            low, high = int(condition[1]), int(condition[2])
            if not low <= body_size <= high:
                code = "EntityTooLarge" if body_size > high else "EntityTooSmall"
                raise PolicyViolation(
                    400, code, f"the file is {body_size} bytes; this form allows {low}-{high}"
                )
        elif condition and condition[0] in ("eq", "starts-with"):
            name = str(condition[1]).lstrip("$").lower()
            covered.add(name)
            value = str(values.get(name, ""))
            ok = value == condition[2] if condition[0] == "eq" else value.startswith(str(condition[2]))
            if not ok:
                raise PolicyViolation(403, "AccessDenied", f"policy condition failed: {condition!r}")
    extra = {k.lower() for k in fields} - _EXEMPT - covered - {"bucket"}
    extra = {k for k in extra if not k.startswith("x-ignore-")}
    if extra:
        raise PolicyViolation(403, "AccessDenied", f"form fields not allowed by the policy: {sorted(extra)}")


def _error(exc: PolicyViolation) -> tuple[int, dict[str, str], str]:
    body = f"<?xml version='1.0' encoding='UTF-8'?><Error><Code>{exc.code}</Code><Message>{exc}</Message>"
    body += "</Error>"
    return exc.status, {"Content-Type": "application/xml"}, body


def _checked_post(self: Any, request: Any, bucket_name: str) -> Any:
    assert _original is not None
    if not self.is_delete_keys():
        fields = {k: v[0] for k, v in self.querystring.items() if v}
        try:
            check(
                fields, bucket_name, len(self.body or b""), os.environ.get("AWS_SECRET_ACCESS_KEY", "testing")
            )
        except PolicyViolation as exc:
            return _error(exc)
    return _original(self, request, bucket_name)


def install() -> None:
    """Check presigned POST policies in this process's moto (idempotent)."""
    global _original
    from moto.s3.responses import S3Response

    if _original is None:
        _original = S3Response._bucket_response_post
        S3Response._bucket_response_post = _checked_post  # type: ignore[method-assign]
