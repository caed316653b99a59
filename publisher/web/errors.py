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
from publisher.domain.i18n import N_, Phrase, Translator, negotiate, translator

#: pydantic's own words for the commonest mistakes, so the catalogue can say them.
PYDANTIC_WORDS = (
    N_("Field required"),
    N_("Input should be a valid string"),
    N_("Input should be a valid list"),
    N_("Input should be a valid dictionary"),
    N_("Input should be a valid boolean"),
    N_("Input should be a valid integer"),
    N_("Input should be a valid integer, unable to parse string as an integer"),
)


def reader_translator(scope: Scope) -> Translator:
    """The language of the one asking: `Accept-Language`, else the newsroom's
    `[newsroom] locale`, else English. Only words change; `field` never does."""
    app = scope.get("app")
    runtime = getattr(getattr(app, "state", None), "runtime", None)
    default = getattr(getattr(runtime, "settings", None), "locale", None)
    accept = dict(scope.get("headers") or []).get(b"accept-language", b"")
    return translator(negotiate(accept.decode("latin-1"), default))


class ErrorDetail(BaseModel):
    field: str | None = Field(description="the input at fault, when one is")
    problem: str


class ErrorOut(BaseModel):
    error: ErrorDetail


def error_response(
    status: int,
    field: str | None,
    problem: str,
    headers: dict[str, str] | None = None,
    reader: Translator | None = None,
) -> JSONResponse:
    """The error as JSON, its `problem` in the `reader`'s language when one is given."""
    headers = dict(headers or {})
    if reader is not None:
        problem = reader.text(problem)
        headers["Content-Language"] = reader.tag
        headers["Vary"] = "Accept-Language"
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
        403: "the token's role may not do this (a writer, under `[newsroom] approval`)",
        404: "no such article, delivery or document",
        409: "the delivery or article is in a state that does not allow this",
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
        if not detail:
            return "body", N_("is not valid JSON")
        return "body", Phrase("is not valid JSON: {reason}", reason=detail)
    if kind in ("model_attributes_type", "dict_type", "model_type") and not where:
        return "body", "must be a JSON object of article fields"
    if kind == "missing":
        return where or "body", "is required"
    if kind == "extra_forbidden":
        return where, "is not an article field"
    error = (first.get("ctx") or {}).get("error")
    if kind == "value_error" and isinstance(error, ValueError) and error.args:
        return where or None, str(error.args[0]) if not isinstance(
            error.args[0], str
        ) else error.args[0]
    return where or None, str(first.get("msg", "is invalid")).removeprefix("Value error, ")


def reader(request: Request) -> Translator:
    return reader_translator(request.scope)


def install_error_handlers(app: FastAPI) -> None:
    async def on_http(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, StarletteHTTPException)
        if exc.status_code == 400:  # FastAPI's only 400: a body that is not UTF-8 JSON
            return error_response(422, "body", "is not valid JSON (UTF-8)", reader=reader(request))
        field = getattr(exc, "field", None)
        problem = getattr(exc, "problem", None) or str(exc.detail)
        headers = dict(exc.headers or {})
        return error_response(exc.status_code, field, problem, headers, reader(request))

    async def on_validation(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, RequestValidationError)
        field, problem = _validation_problem(exc)
        return error_response(422, field, problem, reader=reader(request))

    async def on_input(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, InputError)
        return error_response(422, exc.field, exc.problem, reader=reader(request))

    async def on_not_found(request: Request, exc: Exception) -> Response:
        problem = exc.args[0] if exc.args and isinstance(exc.args[0], str) else str(exc)
        return error_response(404, None, problem, reader=reader(request))  # a Phrase, said anew

    async def on_database(request: Request, exc: Exception) -> Response:
        problem = Phrase("the database is unavailable ({reason})", reason=type(exc).__name__)
        return error_response(503, None, problem, reader=reader(request))

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
        problem = Phrase("request body is larger than {limit:,} bytes", limit=self.max_bytes)
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            closing = {"Connection": "close"}
            response = error_response(413, "body", problem, closing, reader_translator(scope))
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
