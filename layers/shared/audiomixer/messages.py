"""The small JSON messages that cross the queues (ids, never audio), and the adapter that sends them."""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

from pydantic import BaseModel, ConfigDict, Field

from audiomixer.store.keys import ID_PATTERN as _ID
from audiomixer.store.keys import TENANT_PATTERN as _TENANT

if TYPE_CHECKING:
    from mypy_boto3_sqs import SQSClient


class _Message(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    tenant_id: str = Field(pattern=_TENANT)


class SeparateMessage(_Message):
    project_id: str = Field(pattern=_ID)


class AnalyseMessage(_Message):
    kind: Literal["project", "sound"]
    id: str = Field(pattern=_ID)


class RenderMessage(_Message):
    mix_id: str = Field(pattern=_ID)


def send(sqs: SQSClient, queue_url: str, message: BaseModel) -> str:
    """Send one message; returns its SQS message id."""
    response = sqs.send_message(QueueUrl=queue_url, MessageBody=message.model_dump_json())
    return str(response["MessageId"])
