"""Bedrock's wire: error answers, ids and times, and request validation from the service model.

Requests are checked against botocore's own model of the service
(``botocore/data/bedrock/*/service-2.json``): required members, string
patterns (matched whole, as the service does), lengths, ranges and enums. A
client that sends what the real API would refuse gets the real error and a
recorded violation.
"""

from __future__ import annotations

import json
import re
import secrets
import string
from datetime import UTC, datetime
from functools import cache
from typing import Any

import botocore.session

ACCOUNT = "123456789012"
ERROR_NAMESPACE = "http://internal.amazon.com/coral/com.amazon.bedrock/"
_ID_CHARS = string.ascii_lowercase + string.digits


class ApiError(Exception):
    """An error answer: HTTP status, the error code (``x-amzn-ErrorType``) and a message."""

    def __init__(self, status: int, code: str, message: str, *, violation: bool = False) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message
        self.violation = violation  # the client sent what the real API refuses


def validation(message: str, *, violation: bool = True) -> ApiError:
    return ApiError(400, "ValidationException", message, violation=violation)


def error_payload(err: ApiError) -> tuple[int, dict[str, str], bytes]:
    """Status, headers and body of an error answer, as Bedrock sends them."""
    headers = {
        "x-amzn-ErrorType": f"{err.code}:{ERROR_NAMESPACE}",
        "content-type": "application/json",
    }
    return err.status, headers, json.dumps({"message": err.message}).encode()


def job_id() -> str:
    """A 12-character job id, as in ``...:model-invocation-job/abc123def456``."""
    return "".join(secrets.choice(_ID_CHARS) for _ in range(12))


def job_arn(region: str, ident: str) -> str:
    return f"arn:aws:bedrock:{region}:{ACCOUNT}:model-invocation-job/{ident}"


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def parse_time(value: str) -> datetime:
    """An ISO 8601 time from a query string (botocore sends ``...Z`` or ``+00:00``)."""
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


@cache
def _model(service: str) -> Any:
    return botocore.session.get_session().get_service_model(service)


def check_input(service: str, operation: str, params: dict[str, Any]) -> None:
    """Validate an operation's input as the service would.

    Raises:
        ApiError: ``ValidationException`` naming the first problem (a violation).
    """
    shape = _model(service).operation_model(operation).input_shape
    problems = list(_problems(shape, params, ""))
    if problems:
        raise validation(f"{len(problems)} validation error(s) detected: " + "; ".join(problems))


def _problems(shape: Any, value: Any, where: str) -> Any:
    kind, meta = shape.type_name, shape.metadata
    if kind == "structure":
        if not isinstance(value, dict):
            yield f"{where or 'body'}: must be an object"
            return
        for name in shape.required_members:
            if name not in value:
                yield f"Value null at '{where}{name}' failed to satisfy constraint: not null"
        for name, item in value.items():
            member = shape.members.get(name)
            if member is None:
                yield f"'{where}{name}' is not a known member"
            elif member.serialization.get("location") in (None, "body"):
                yield from _problems(member, item, f"{where}{name}.")
        if meta.get("union") and len(value) != 1:
            yield f"'{where.rstrip('.')}' must set exactly one member"
        return
    where = where.rstrip(".")
    if kind == "string":
        yield from _string(meta, value, where)
    elif kind in ("integer", "long"):
        if not isinstance(value, int) or isinstance(value, bool):
            yield f"'{where}' must be an integer"
        elif not meta.get("min", value) <= value <= meta.get("max", value):
            yield f"Value {value} at '{where}' failed to satisfy constraint: range"
    elif kind == "list":
        if not isinstance(value, list):
            yield f"'{where}' must be a list"
        else:
            for i, item in enumerate(value):
                yield from _problems(shape.member, item, f"{where}[{i}].")


def _string(meta: dict[str, Any], value: Any, where: str) -> Any:
    if not isinstance(value, str):
        yield f"'{where}' must be a string"
        return
    if not meta.get("min", 0) <= len(value) <= meta.get("max", len(value)):
        yield f"Value at '{where}' failed to satisfy constraint: length"
    pattern = meta.get("pattern")
    if pattern and not re.fullmatch(pattern, value):
        yield f"Value '{value[:100]}' at '{where}' failed to satisfy constraint: pattern {pattern}"
    if "enum" in meta and value not in meta["enum"]:
        yield f"Value '{value}' at '{where}' failed to satisfy constraint: enum {meta['enum']}"


def check_value(service: str, shape_name: str, value: str, where: str) -> None:
    """Validate one string against a named shape (a path or query parameter)."""
    problems = list(_string(_model(service).shape_for(shape_name).metadata, value, where))
    if problems:
        raise validation("; ".join(problems))
