"""S3 object helpers; the client is always passed in."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_s3.type_defs import ObjectIdentifierTypeDef


def exists(s3: S3Client, bucket: str, key: str) -> bool:
    try:
        s3.head_object(Bucket=bucket, Key=key)
        return True
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
            return False
        raise


def size(s3: S3Client, bucket: str, key: str) -> int | None:
    try:
        return int(s3.head_object(Bucket=bucket, Key=key)["ContentLength"])
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
            return None
        raise


def read(s3: S3Client, bucket: str, key: str, max_bytes: int | None = None) -> bytes:
    """Read an object; with `max_bytes`, at most that plus one byte (so callers can tell it is over)."""
    kwargs: dict[str, Any] = {"Bucket": bucket, "Key": key}
    if max_bytes is not None:
        kwargs["Range"] = f"bytes=0-{max_bytes}"
    return bytes(s3.get_object(**kwargs)["Body"].read())


def write(
    s3: S3Client, bucket: str, key: str, data: bytes, content_type: str = "application/octet-stream"
) -> None:
    s3.put_object(Bucket=bucket, Key=key, Body=data, ContentType=content_type)


def delete(s3: S3Client, bucket: str, key: str) -> None:
    s3.delete_object(Bucket=bucket, Key=key)


def delete_prefix(s3: S3Client, bucket: str, prefix: str) -> int:
    """Delete every object under `prefix`; returns how many."""
    deleted = 0
    paginator = s3.get_paginator("list_objects_v2")
    for page in paginator.paginate(Bucket=bucket, Prefix=prefix):
        objects: list[ObjectIdentifierTypeDef] = [{"Key": o["Key"]} for o in page.get("Contents", [])]
        for start in range(0, len(objects), 1000):
            batch = objects[start : start + 1000]
            s3.delete_objects(Bucket=bucket, Delete={"Objects": batch, "Quiet": True})
            deleted += len(batch)
    return deleted


def copy(s3: S3Client, bucket: str, source_key: str, dest_key: str) -> None:
    s3.copy_object(Bucket=bucket, Key=dest_key, CopySource={"Bucket": bucket, "Key": source_key})


def presigned_get(s3: S3Client, bucket: str, key: str, filename: str, expires_s: int) -> str:
    """A URL that downloads `key` as an attachment named `filename` for `expires_s` seconds."""
    return str(
        s3.generate_presigned_url(
            "get_object",
            Params={
                "Bucket": bucket,
                "Key": key,
                "ResponseContentDisposition": f'attachment; filename="{filename}"',
            },
            ExpiresIn=expires_s,
        )
    )


def presigned_post(
    s3: S3Client, bucket: str, key: str, content_type: str, max_bytes: int, expires_s: int
) -> dict[str, Any]:
    """A browser-style POST form bound to one key, one content type and 1..max_bytes bytes."""
    return dict(
        s3.generate_presigned_post(
            Bucket=bucket,
            Key=key,
            Fields={"Content-Type": content_type},
            Conditions=[{"Content-Type": content_type}, ["content-length-range", 1, max_bytes]],
            ExpiresIn=expires_s,
        )
    )
