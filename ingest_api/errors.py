"""One error shape for every failure: {"error": code, "message": text, ...details}."""

from __future__ import annotations

import logging
from typing import Awaitable, Callable

import psycopg
from fastapi import FastAPI, Request
from psycopg_pool import PoolTimeout
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

log = logging.getLogger(__name__)

RETRY_AFTER_S = 2


class ApiError(Exception):
    """Raised anywhere in a request to answer with a specific status and code."""

    def __init__(self, status: int, code: str, message: str, details: dict | None = None, **more):
        super().__init__(message)
        self.status, self.code, self.message = status, code, message
        self.details = {**(details or {}), **more}


def unauthorized(message: str = "a valid bearer token is required") -> ApiError:
    return ApiError(401, "unauthorized", message)


def forbidden(message: str = "not allowed for this caller") -> ApiError:
    return ApiError(403, "forbidden", message)


def not_found(what: str = "resource") -> ApiError:
    return ApiError(404, "not_found", f"{what} not found")


def error_body(code: str, message: str, **details) -> dict:
    return {**details, "error": code, "message": message}


_HTTP_CODES = {400: "bad_request", 401: "unauthorized", 403: "forbidden", 404: "not_found",
               405: "method_not_allowed", 413: "payload_too_large", 415: "unsupported_media_type"}


def api_error_response(exc: ApiError) -> JSONResponse:
    headers = {"WWW-Authenticate": "Bearer"} if exc.status == 401 else {}
    details = dict(exc.details)
    if "retry_after" in details:  # a header, not part of the body
        headers["Retry-After"] = str(details.pop("retry_after"))
    return JSONResponse({**details, "error": exc.code, "message": exc.message}, exc.status, headers=headers or None)


def install(app: FastAPI, caller_first: Callable[[Request], Awaitable[None]] | None = None) -> None:
    """The handlers. `caller_first(request)` raises the ApiError (401, 403) a request's route gives its
    caller: FastAPI reads and validates the body before it resolves dependencies, so without it an
    anonymous malformed request was told 422 about its input instead of 401."""
    @app.exception_handler(ApiError)
    async def _api_error(request: Request, exc: ApiError):
        return api_error_response(exc)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError):
        if caller_first is not None:
            try:
                await caller_first(request)
            except ApiError as refused:
                return api_error_response(refused)
        problems = [{"loc": [str(p) for p in e.get("loc", ())], "msg": str(e.get("msg", ""))}
                    for e in exc.errors()]
        return JSONResponse(error_body("invalid", "the request is malformed", problems=problems), 422)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException):
        code = _HTTP_CODES.get(exc.status_code, "error")
        return JSONResponse(error_body(code, str(exc.detail)), exc.status_code)

    @app.exception_handler(psycopg.OperationalError)
    @app.exception_handler(PoolTimeout)
    async def _views_unreachable(request: Request, exc: Exception):
        # Postgres restarting (a connection cut by its exit, or none to be had): the caller's to retry,
        # not our bug. A command already sent stays sent; a retry with its Idempotency-Key finds it.
        log.warning("views unreachable on %s %s: %s", request.method, request.url.path, exc)
        return JSONResponse(error_body("unavailable", "the views are unreachable for a moment; retry"), 503,
                            headers={"Retry-After": str(RETRY_AFTER_S)})

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception):
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return JSONResponse(error_body("internal", "something went wrong on our side"), 500)


ERROR_SCHEMA = {"type": "object", "required": ["error", "message"], "additionalProperties": True,
                "properties": {"error": {"type": "string", "description": "a stable code, e.g. `insufficient_stock`"},
                               "message": {"type": "string"}},
                "description": "Every failure: a code, a message, and details that depend on the code."}
PENDING_SCHEMA = {"type": "object", "required": ["error", "commandId", "location"], "additionalProperties": True,
                  "properties": {"error": {"const": "pending"}, "commandId": {"type": "string"},
                                 "location": {"type": "string"}}}


def document(app: FastAPI) -> None:
    """Make `/openapi.json` say what the API answers: FastAPI documents only the success and a 422 shaped
    `{"detail": [...]}`, while every error here is `{"error", "message", ...}` (api.md), any operation
    may answer 4xx and 503, and one that sends a command may answer 202 `pending`."""
    generate = app.openapi

    def openapi() -> dict:
        if app.openapi_schema is not None:
            return app.openapi_schema
        schema = generate()
        schemas = schema.setdefault("components", {}).setdefault("schemas", {})
        schemas["Error"], schemas["Pending"] = ERROR_SCHEMA, PENDING_SCHEMA
        for name in ("HTTPValidationError", "ValidationError"):
            schemas.pop(name, None)
        error = {"content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}
        for path, item in schema.get("paths", {}).items():
            for method, operation in item.items():
                responses = operation.setdefault("responses", {})
                responses.pop("422", None)
                responses["4XX"] = {"description": "refused: see `error`", **error}
                responses["503"] = ({"description": "degraded: see `components`"} if path == "/health" else
                                    {"description": "unavailable: retry after `Retry-After`", **error})
                sends_command = method != "get" and "/webhooks/" not in path and "/images/" not in path
                if sends_command or path == "/api/commands/{command_id}":
                    responses["202"] = {"description": "accepted, not decided yet: poll `location`", "content": {
                        "application/json": {"schema": {"$ref": "#/components/schemas/Pending"}}}}
        return schema
    app.openapi = openapi
