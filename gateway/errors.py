"""Every error the gateway answers itself, in the OpenAI error shape, each class with its HTTP status.

    {"error": {"message": "...", "type": "invalid_request_error", "param": null, "code": "model_not_found"}}

Upstream errors are not wrapped: a backend's 4xx/5xx passes through with its own status and body.
"""

from __future__ import annotations

from typing import ClassVar

import msgspec


class _ErrorBody(msgspec.Struct):
    message: str
    type: str
    param: str | None
    code: str | None


class _Envelope(msgspec.Struct):
    error: _ErrorBody


def error_body(message: str, type_: str, code: str | None, param: str | None = None) -> bytes:
    return msgspec.json.encode(_Envelope(_ErrorBody(message, type_, param, code)))


class GatewayError(Exception):
    status: ClassVar[int] = 500
    type: ClassVar[str] = "server_error"
    code: ClassVar[str | None] = None

    def __init__(self, message: str, *, param: str | None = None, retry_after_s: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.param = param
        self.retry_after_s = retry_after_s

    def body(self) -> bytes:
        return error_body(self.message, self.type, self.code, self.param)

    def headers(self) -> dict[str, str]:
        return {"retry-after": str(self.retry_after_s)} if self.retry_after_s is not None else {}


class BadRequest(GatewayError):
    status = 400
    type = "invalid_request_error"
    code = "invalid_request"


class ModelNotFound(GatewayError):
    status = 404
    type = "invalid_request_error"
    code = "model_not_found"


class BodyTooLarge(GatewayError):
    status = 413
    type = "invalid_request_error"
    code = "request_too_large"


class NoHealthyBackend(GatewayError):
    status = 503
    type = "service_unavailable"
    code = "no_healthy_backend"


class UpstreamUnavailable(GatewayError):
    """Could not connect to any backend for this request (after retries)."""

    status = 502
    type = "upstream_error"
    code = "upstream_connect_error"


class UpstreamTimeout(GatewayError):
    status = 504
    type = "upstream_error"
    code = "upstream_timeout"


class ClientDisconnected(Exception):
    """The client went away before the answer was complete; the upstream request was cancelled."""
