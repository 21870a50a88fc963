"""The one lazily-built, cached place for boto3 clients. Adapters take clients as arguments; handlers
and the local stack get them from here. boto3 honours AWS_ENDPOINT_URL itself, so the same code talks to
AWS, moto or LocalStack."""

from __future__ import annotations

from functools import cache, lru_cache
from typing import TYPE_CHECKING, Any, Literal, overload

import boto3
from botocore.config import Config

from audiomixer.settings import get_settings

if TYPE_CHECKING:  # boto3-stubs (dev only): the runtime never imports them
    from mypy_boto3_apigatewaymanagementapi import ApiGatewayManagementApiClient
    from mypy_boto3_batch import BatchClient
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_sqs import SQSClient
    from mypy_boto3_ssm import SSMClient

_RETRIES = Config(
    retries={"max_attempts": 5, "mode": "standard"},
    connect_timeout=5,
    read_timeout=60,
    max_pool_connections=50,  # the local stack and the notifier call from many threads at once
)


@overload
def client(service: Literal["s3"]) -> S3Client: ...
@overload
def client(service: Literal["sqs"]) -> SQSClient: ...
@overload
def client(service: Literal["batch"]) -> BatchClient: ...
@overload
def client(service: Literal["ssm"]) -> SSMClient: ...
@overload
def client(service: Literal["dynamodb"]) -> DynamoDBClient: ...
def client(service: str) -> Any:
    """The cached client of one AWS service, typed per service."""
    return _client(service)


@cache
def _client(service: str) -> Any:
    settings = get_settings()
    kwargs: dict[str, Any] = {"region_name": settings.region, "config": _RETRIES}
    if service == "s3":
        # Path-style keeps presigned URLs valid against a loopback endpoint.
        kwargs["config"] = _RETRIES.merge(Config(s3={"addressing_style": "path"}, signature_version="s3v4"))
    return boto3.client(service, **kwargs)  # type: ignore[call-overload]


@lru_cache(maxsize=8)
def management_api(endpoint_url: str) -> ApiGatewayManagementApiClient:
    """The API Gateway @connections client for one WebSocket stage endpoint."""
    settings = get_settings()
    return boto3.client(
        "apigatewaymanagementapi",
        endpoint_url=endpoint_url,
        region_name=settings.region,
        config=Config(
            retries={"max_attempts": 2, "mode": "standard"},
            connect_timeout=2,
            read_timeout=5,
            max_pool_connections=32,  # the notifier fans out in parallel
        ),
    )


def reset() -> None:
    """Forget cached settings and clients (tests and the local stack change the environment)."""
    from audiomixer import auth, store

    _client.cache_clear()
    auth.reset_cache()
    management_api.cache_clear()
    get_settings.cache_clear()
    store.models.configure()
