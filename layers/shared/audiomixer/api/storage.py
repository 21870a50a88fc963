"""Listing helpers of the API: display names, opaque cursors and pages of a tenant's rows (S3 is
store.blobs)."""

from __future__ import annotations

import base64
import binascii
import json
import re
import unicodedata
from typing import Annotated, TypeVar

from fastapi import Query
from pynamodb.models import Model

from audiomixer.api import errors
from audiomixer.store.keys import is_id

M = TypeVar("M", bound=Model)

DEFAULT_NAME = "Untitled"


def display_name(name: str | None, filename: str | None = None, limit: int = 200) -> str:
    """A name safe to show: the given name, else the file's base name without its extension."""
    raw = (name or "").strip()
    if not raw and filename:
        base = re.split(r"[\\/]", filename)[-1]
        raw = base.rsplit(".", 1)[0] if "." in base.strip(".") else base
    cleaned = "".join(ch for ch in unicodedata.normalize("NFC", raw) if unicodedata.category(ch)[0] != "C")
    cleaned = " ".join(cleaned.split())[:limit]
    return cleaned or DEFAULT_NAME


# --- pagination ---


def encode_cursor(last_id: str) -> str:
    raw = json.dumps({"id": last_id}, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str | None) -> str | None:
    if cursor is None or cursor == "":
        return None
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        data = json.loads(raw)
    except (binascii.Error, ValueError, UnicodeDecodeError):
        raise errors.bad_request("invalid cursor") from None
    last_id = data.get("id") if isinstance(data, dict) else None
    if not isinstance(last_id, str) or not is_id(last_id):
        raise errors.bad_request("invalid cursor")
    return last_id


# The query parameters of every list route: one page of `limit` rows after the `cursor` a page gave.
PageLimit = Annotated[int, Query(ge=1, le=100)]
PageCursor = Annotated[str | None, Query(max_length=512, description="next_cursor of the previous page")]
PAGE_LIMIT_DEFAULT = 20


def page(
    model: type[M], tenant_id: str, range_key: str, limit: int, cursor: str | None
) -> tuple[list[M], str | None]:
    """One page of a tenant's rows, newest first; the next cursor is set only when more rows exist."""
    last_id = decode_cursor(cursor)
    start = {"tenant_id": {"S": tenant_id}, range_key: {"S": last_id}} if last_id else None
    rows = list(model.query(tenant_id, scan_index_forward=False, limit=limit + 1, last_evaluated_key=start))
    if len(rows) > limit:
        rows = rows[:limit]
        return rows, encode_cursor(getattr(rows[-1], range_key))
    return rows, None
