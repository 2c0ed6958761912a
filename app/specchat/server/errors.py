"""Errors the API answers with, as OpenAI-style error objects:
`{"error": {"message", "type", "param", "code"}}`."""

from __future__ import annotations

from starlette.responses import JSONResponse


class ApiError(Exception):
    """A request the server refuses; `param` names the request field at fault."""

    def __init__(
        self,
        status: int,
        message: str,
        param: str | None = None,
        code: str | None = None,
        kind: str = "invalid_request_error",
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.headers = headers or {}
        self.status = status
        self.message = " ".join(message.split())  # one line
        self.param = param
        self.code = code
        self.kind = kind

    def body(self) -> dict[str, object]:
        return {
            "error": {
                "message": self.message,
                "type": self.kind,
                "param": self.param,
                "code": self.code,
            }
        }

    def response(self) -> JSONResponse:
        headers = {"WWW-Authenticate": "Bearer"} if self.status == 401 else {}
        return JSONResponse(
            self.body(), status_code=self.status, headers={**headers, **self.headers}
        )


def bad_request(message: str, param: str | None = None, code: str | None = None) -> ApiError:
    return ApiError(400, message, param=param, code=code)


def shutting_down() -> ApiError:
    return ApiError(503, "the server is shutting down", kind="server_error", code="shutting_down")


def queue_full(retry_after_s: int) -> ApiError:
    return ApiError(
        429,
        f"the server's wait queue is full; retry in about {retry_after_s} s",
        kind="server_error",
        code="queue_full",
        headers={"Retry-After": str(retry_after_s)},
    )
