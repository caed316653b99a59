"""One shape for every error the API answers: `{"error": {"field", "problem"}}`.

A client can show an editor exactly what to fix; the handlers here turn the
product's own exceptions and FastAPI's validation errors into that shape.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from sqlalchemy.exc import InterfaceError, OperationalError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from publisher.domain.errors import InputError, NotFound


class ErrorDetail(BaseModel):
    field: str | None = Field(description="the input at fault, when one is")
    problem: str


class ErrorOut(BaseModel):
    error: ErrorDetail


def error_response(
    status: int, field: str | None, problem: str, headers: dict[str, str] | None = None
) -> JSONResponse:
    body = ErrorOut(error=ErrorDetail(field=field, problem=problem))
    return JSONResponse(body.model_dump(), status_code=status, headers=headers)


class ApiError(StarletteHTTPException):
    """An error response with the field at fault (401, 404, 409, 413)."""

    def __init__(
        self, status: int, field: str | None, problem: str, headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(status, problem, headers)
        self.field = field
        self.problem = problem


def documented_errors(*statuses: int) -> dict[int | str, dict[str, Any]]:
    descriptions = {
        401: "no valid bearer token",
        404: "no such article, delivery or document",
        409: "the delivery is in a state that does not allow this",
        413: "request body too large",
        416: "the byte range asked for starts past the end; `Content-Range` gives the length",
        422: "invalid input; `field` names it",
        503: "the database is unavailable",
    }
    return {s: {"model": ErrorOut, "description": descriptions[s]} for s in statuses}


def _validation_problem(exc: RequestValidationError) -> tuple[str | None, str]:
    first = exc.errors()[0] if exc.errors() else {}
    loc = [p for p in first.get("loc", ()) if p not in ("body", "query", "path", "header")]
    # The field, then list positions; pydantic's union-member tags ("list[str]") are noise.
    where = "".join(
        [str(loc[0]), *(f"[{p}]" for p in loc[1:] if isinstance(p, int))] if loc else []
    )
    kind = first.get("type", "")
    if kind == "json_invalid":
        detail = (first.get("ctx") or {}).get("error", "")
        return "body", f"is not valid JSON: {detail}".rstrip(": ")
    if kind in ("model_attributes_type", "dict_type", "model_type") and not where:
        return "body", "must be a JSON object of article fields"
    if kind == "missing":
        return where or "body", "is required"
    if kind == "extra_forbidden":
        return where, "is not an article field"
    return where or None, str(first.get("msg", "is invalid")).removeprefix("Value error, ")


def install_error_handlers(app: FastAPI) -> None:
    async def on_http(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, StarletteHTTPException)
        if exc.status_code == 400:  # FastAPI's only 400: a body that is not UTF-8 JSON
            return error_response(422, "body", "is not valid JSON (UTF-8)")
        field = getattr(exc, "field", None)
        problem = getattr(exc, "problem", None) or str(exc.detail)
        return error_response(exc.status_code, field, problem, dict(exc.headers or {}))

    async def on_validation(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, RequestValidationError)
        field, problem = _validation_problem(exc)
        return error_response(422, field, problem)

    async def on_input(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, InputError)
        return error_response(422, exc.field, exc.problem)

    async def on_not_found(request: Request, exc: Exception) -> Response:
        return error_response(404, None, str(exc))

    async def on_database(request: Request, exc: Exception) -> Response:
        return error_response(503, None, f"the database is unavailable ({type(exc).__name__})")

    app.add_exception_handler(StarletteHTTPException, on_http)
    app.add_exception_handler(RequestValidationError, on_validation)
    app.add_exception_handler(InputError, on_input)
    app.add_exception_handler(NotFound, on_not_found)
    app.add_exception_handler(OperationalError, on_database)  # cannot connect, locked
    app.add_exception_handler(InterfaceError, on_database)


class BodyLimit:
    """Refuse request bodies over `max_bytes` with 413, before reading them when
    Content-Length says so, or as soon as a streamed body passes the limit."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        problem = f"request body is larger than {self.max_bytes:,} bytes"
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            response = error_response(413, "body", problem, {"Connection": "close"})
            await response(scope, receive, send)
            return
        received = 0

        async def limited() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    # An HTTPException passes through FastAPI's body parsing untouched.
                    raise ApiError(413, "body", problem)
            return message

        await self.app(scope, limited, send)
