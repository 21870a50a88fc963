"""One error envelope for every failure: `{"error": {"code", "message"}}`."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Logger
from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.models import Schema
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from pydantic.json_schema import GenerateJsonSchema
from starlette.exceptions import HTTPException as StarletteHTTPException

logger = Logger(service="audiomixer", child=True)


class ErrorBody(BaseModel):
    code: str = Field(description="machine-readable error code", examples=["not_found"])
    message: str = Field(description="human-readable explanation", examples=["project not found"])


class ErrorResponse(BaseModel):
    error: ErrorBody


class ApiError(Exception):
    def __init__(self, status: int, code: str, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.headers = status, code, message, headers


def bad_request(message: str) -> ApiError:
    return ApiError(400, "bad_request", message)


def unauthorized(message: str) -> ApiError:
    return ApiError(401, "unauthorized", message, {"WWW-Authenticate": "Bearer"})


def not_found(what: str) -> ApiError:
    return ApiError(404, "not_found", f"{what} not found")


def conflict(message: str) -> ApiError:
    return ApiError(409, "conflict", message)


def payload_too_large(message: str) -> ApiError:
    return ApiError(413, "payload_too_large", message)


def validation_error(message: str) -> ApiError:
    return ApiError(422, "validation_error", message)


def rate_limited(message: str, retry_after: int) -> ApiError:
    return ApiError(429, "rate_limited", message, {"Retry-After": str(max(1, retry_after))})


def quota_exceeded(message: str) -> ApiError:
    return ApiError(403, "quota_exceeded", message)


def envelope(status: int, code: str, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": {"code": code, "message": message}}, status_code=status, headers=headers)


_HTTP_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "validation_error",
    429: "rate_limited",
}


def _location(loc: tuple[Any, ...]) -> str:
    parts = [str(p) for p in loc if p not in ("body", "query", "path", "header", "form")]
    return ".".join(parts) or str(loc[0] if loc else "request")


# What FastAPI reports when a JSON body arrived as something else (a form, text, nothing parseable).
_NOT_AN_OBJECT = {"model_attributes_type", "dict_type", "model_type"}


def _readable(exc: RequestValidationError, request: Request) -> tuple[int, str, str]:
    errors = exc.errors()
    if any(e.get("type") == "json_invalid" for e in errors):
        return 400, "bad_request", "request body is not valid JSON"
    content_type = request.headers.get("content-type", "")
    whole_body = [e for e in errors if tuple(e.get("loc", ())) == ("body",)]
    if whole_body and "json" not in content_type.lower() and whole_body[0].get("type") in _NOT_AN_OBJECT:
        return (
            415,
            "unsupported_media_type",
            "send the body as a JSON object with Content-Type: application/json "
            f"(got {content_type or 'no Content-Type'})",
        )
    messages = []
    for e in errors[:10]:
        msg = str(e.get("msg", "invalid")).removeprefix("Value error, ")
        messages.append(f"{_location(tuple(e.get('loc', ())))}: {msg}")
    return 422, "validation_error", "; ".join(messages) or "invalid request"


def _multipart_message(exc: StarletteHTTPException) -> str | None:
    """Say what to send when Starlette could not parse a multipart body (it only says "Invalid multipart
    data."); the parser's own reason is on the exception chain."""
    if exc.status_code != 400 or exc.detail != "Invalid multipart data.":
        return None
    cause: BaseException | None = exc.__context__
    while cause is not None and cause.__cause__ is not None:
        cause = cause.__cause__
    reason = str(cause) if cause is not None else "unreadable"
    if "header size" in reason:
        return (
            "the multipart form could not be read: a part's headers are over 4 KB (a file name that long?); "
            "send a file name under 4,000 characters (the first 200 are kept as the display name)"
        )
    return (
        f"the multipart form could not be read ({reason}); send multipart/form-data with the file in the "
        "documented field (see /docs)"
    )


def install(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def _api_error(_: Request, exc: ApiError) -> JSONResponse:
        return envelope(exc.status, exc.code, exc.message, exc.headers)

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        status, code, message = _readable(exc, request)
        return envelope(status, code, message)

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = _HTTP_CODES.get(exc.status_code, "internal" if exc.status_code >= 500 else "error")
        message = exc.detail if isinstance(exc.detail, str) else code.replace("_", " ")
        message = _multipart_message(exc) or message
        return envelope(exc.status_code, code, message, dict(exc.headers or {}))

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        logger.exception("api: unhandled error", extra={"path": request.url.path})
        return envelope(500, "internal", "internal error")


# Error responses name the envelope's schema by reference, and `component_schemas` puts it into the
# document once: a `model` would make FastAPI build a pydantic adapter per route and status code (about
# 170, a third of the API's first request on a cold start) only to write this same reference.
COMPONENTS_REF = "#/components/schemas/{model}"
ERROR_RESPONSE_REF = COMPONENTS_REF.format(model=ErrorResponse.__name__)


def _doc(description: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {"application/json": {"schema": {"$ref": ERROR_RESPONSE_REF}}},
    }


def component_schemas() -> dict[str, Any]:
    """The OpenAPI components the error responses refer to (ErrorResponse and the models it holds), as
    FastAPI writes a response model's."""
    generator = GenerateJsonSchema(ref_template=COMPONENTS_REF)
    _, definitions = generator.generate_definitions(
        inputs=[(ErrorResponse.__name__, "serialization", ErrorResponse.__pydantic_core_schema__)]
    )
    # Through FastAPI's OpenAPI Schema model, as every schema of the document goes (it orders the keys).
    return {
        name: jsonable_encoder(Schema(**definition), by_alias=True, exclude_none=True)
        for name, definition in definitions.items()
    }


# What every route may answer on failure; `responses=` of the app.
SERVER_ERROR: dict[int | str, dict[str, Any]] = {500: _doc("A bug: reported with code `internal`")}


COMMON_RESPONSES: dict[int | str, dict[str, Any]] = {
    400: _doc("Malformed request (bad JSON, bad cursor)"),
    401: _doc("Missing or invalid bearer token"),
    415: _doc("Body sent with a Content-Type the route does not take (send application/json)"),
    422: _doc("Validation error"),
    429: _doc("Too many requests or too many concurrent jobs (see Retry-After)"),
}

# What every /api/v1 route may answer on failure; `responses=` of each API router.
API_RESPONSES: dict[int | str, dict[str, Any]] = {**SERVER_ERROR, **COMMON_RESPONSES}


def responses(*codes: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses=` for the extra error codes of one route."""
    described = {
        403: "Storage quota exceeded",
        404: "Not found (or not yours)",
        409: "Conflict with the resource's current state",
        413: "Payload too large",
    }
    return {code: _doc(described[code]) for code in codes}
