"""`Idempotency-Key` for mutating POSTs, on top of powertools idempotency (DynamoDB persistence).

The idempotency record is keyed on (tenant, route, Idempotency-Key); a fingerprint of the request body is
the validated payload, so a key reused with a different request is refused instead of silently answering
the first request's response. A failed request (any error) leaves no record, so it can be retried."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from fastapi import Header, Request
from fastapi.responses import JSONResponse

from audiomixer import aws
from audiomixer.api import errors
from audiomixer.settings import get_settings

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.idempotency import DynamoDBPersistenceLayer, IdempotencyConfig

EXPIRES_AFTER_S = 24 * 60 * 60
# Without a Lambda context (local server), an in-progress record expires after the API's timeout.
LOCAL_REQUEST_BUDGET_MS = 29_000
KEY_PREFIX = "audiomixer.api"
REPLAYED_HEADER = "Idempotent-Replayed"

IdempotencyKey = Header(
    default=None,
    alias="Idempotency-Key",
    min_length=1,
    max_length=255,
    description="Repeat a POST with the same key to get the first response back; nothing new is created",
)


class _FixedBudget:
    def get_remaining_time_in_millis(self) -> int:
        return LOCAL_REQUEST_BUDGET_MS


def fingerprint(*parts: bytes | str) -> str:
    digest = hashlib.sha256()
    for part in parts:
        data = part.encode() if isinstance(part, str) else part
        digest.update(len(data).to_bytes(8, "big"))
        digest.update(data)
    return digest.hexdigest()


def _config(request: Request) -> IdempotencyConfig:
    from aws_lambda_powertools.utilities.idempotency import IdempotencyConfig

    config = IdempotencyConfig(
        event_key_jmespath="[tenant, route, key]",
        payload_validation_jmespath="fingerprint",
        expires_after_seconds=EXPIRES_AFTER_S,
        response_hook=lambda response, _record: {**response, "replayed": True},
    )
    config.register_lambda_context(request.scope.get("aws.context") or _FixedBudget())  # type: ignore[arg-type]
    return config


def _persistence() -> DynamoDBPersistenceLayer:
    from aws_lambda_powertools.utilities.idempotency import DynamoDBPersistenceLayer

    return DynamoDBPersistenceLayer(
        table_name=get_settings().idempotency_table, boto3_client=aws.client("dynamodb")
    )


def run(
    request: Request,
    tenant_id: str,
    key: str | None,
    body_fingerprint: str,
    work: Callable[[], tuple[int, dict[str, Any]]],
) -> JSONResponse:
    """Run `work` (returning status and JSON body) at most once per (tenant, route, key)."""
    if key is None:
        status, body = work()
        return JSONResponse(body, status_code=status)

    # Imported on the first keyed POST, not at the API function's cold start.
    from aws_lambda_powertools.utilities.idempotency import idempotent_function
    from aws_lambda_powertools.utilities.idempotency.exceptions import (
        IdempotencyAlreadyInProgressError,
        IdempotencyValidationError,
    )

    route = f"{request.method} {request.url.path}"

    # Built per request: table name and client come from settings, which tests and the local stack change.
    @idempotent_function(  # type: ignore[untyped-decorator]  # powertools leaves it untyped
        data_keyword_argument="request_key",
        persistence_store=_persistence(),
        config=_config(request),
        key_prefix=KEY_PREFIX,
    )
    def execute(request_key: dict[str, str]) -> dict[str, Any]:
        status, body = work()
        return {"status": status, "body": body}

    try:
        result = execute(
            request_key={"tenant": tenant_id, "route": route, "key": key, "fingerprint": body_fingerprint}
        )
    except IdempotencyValidationError:
        raise errors.ApiError(
            422, "idempotency_key_reused", "this Idempotency-Key was already used with a different request"
        ) from None
    except IdempotencyAlreadyInProgressError:
        raise errors.ApiError(
            409, "conflict", "a request with this Idempotency-Key is still in progress; retry shortly"
        ) from None
    headers = {REPLAYED_HEADER: "true"} if result.get("replayed") else None
    return JSONResponse(result["body"], status_code=int(result["status"]), headers=headers)
