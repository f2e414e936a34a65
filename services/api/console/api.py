"""The console's only data path: the REST API itself, called in-process with the caller's token.

Each call goes through the same WSGI stack as an HTTP request (the guard, validation, errors,
audit), so the console has no second copy of any rule. The inner request shares Flask's `g` with
the page's request; `call` restores what the guard put there.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from flask import current_app, g, request


@dataclass(frozen=True)
class Answer:
    status: int
    body: Any

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300

    @property
    def error(self) -> dict[str, Any]:
        if isinstance(self.body, dict) and isinstance(self.body.get("error"), dict):
            return dict(self.body["error"])
        return {"code": "Error", "message": f"HTTP {self.status}"} if not self.ok else {}


def call(method: str, path: str, **kwargs: Any) -> Answer:
    saved = {k: g.get(k) for k in ("principal", "tenant_roles", "login_name")}
    headers = {"Authorization": request.headers.get("Authorization", "")}
    try:
        resp = current_app.test_client().open("/api/v1" + path, method=method, headers=headers,
                                              environ_base={"REMOTE_ADDR": request.remote_addr or ""}, **kwargs)
        try:
            body = resp.get_json(silent=True)
        finally:
            resp.close()
    finally:
        for k, v in saved.items():
            if v is None:
                g.pop(k, None)
            else:
                setattr(g, k, v)
    return Answer(resp.status_code, body)


def get(path: str) -> Any:
    """The body of a GET that must succeed (else the API's own error is raised on the page)."""
    answer = call("GET", path)
    if not answer.ok:
        raise ApiError(answer)
    return answer.body


class ApiError(Exception):
    def __init__(self, answer: Answer) -> None:
        super().__init__(answer.error.get("message", ""))
        self.answer = answer
