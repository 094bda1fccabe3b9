"""Request bodies of the operators' writes: JSON decoded into a typed struct, then every
field checked, with 400 for JSON that does not parse and 422 naming each bad field.

Names that become part of a sensor key (a factory's, a line, a machine's, a sensor's)
follow the key rule of both ends (shared.sensor_key: printable, no control or invisible
characters, no blank or padded segment, at most 128 characters) and may not hold ``/``.
Other text (location, type, unit) is bounded and printable too: it ends up in logs, CSV
exports and the console.
"""

from __future__ import annotations

import re
from typing import Any, TypeVar

import msgspec

from hub.errors import ApiError
from shared import text as shared_text
from shared.sensor_key import MAX_SEGMENT_LEN, segment_problem
from shared.values import value_problem

MAX_INT64 = 2**63 - 1
_NAME_FIELDS = frozenset({"name", "line"})
NAMED_FIELD = re.compile(r"(?:missing required|contains unknown) field `([^`]+)`")

S = TypeVar("S", bound=msgspec.Struct)
Details = list[dict[str, Any]]


def invalid(details: Details, what: str = "body") -> ApiError:
    fields = ", ".join(d["field"] for d in details)
    return ApiError(422, "validation_error", f"invalid {what} ({fields})", details)


def decode(body: bytes, kind: type[S], what: str) -> S:
    """``body`` as ``kind``: 400 when it is not JSON, 422 naming the field msgspec refused."""
    if not body.strip():
        raise invalid([{"field": "body", "message": "a JSON object is required"}], what)
    try:
        return msgspec.json.decode(body, type=kind)
    except msgspec.ValidationError as exc:
        text = str(exc)
        missing = NAMED_FIELD.search(text)
        if missing is not None:
            field = missing.group(1)
        elif "`$." in text:
            field = text.rsplit("`$.", 1)[-1].rstrip("`").split("[", 1)[0]
        else:
            field = "body"
        raise invalid([{"field": field, "message": text}], what) from None
    except msgspec.DecodeError as exc:
        raise ApiError(400, "invalid_json", f"body is not valid JSON: {exc}") from None


def name_problem(field: str, value: str) -> str | None:
    """A name that is (part of) a sensor key, or a factory's name."""
    problem = segment_problem(field, value)
    if problem is None and "/" in value:
        problem = f"{field} must not contain '/' (sensor keys are line/machine/sensor)"
    return problem


def text_problem(field: str, value: str, max_len: int) -> str | None:
    """Free text (location, type, unit, comment): bounded, printable, may be empty."""
    if len(value) > max_len:
        return f"{field} is longer than {max_len} characters"
    return shared_text.text_problem(field, value)


def number_problem(field: str, value: float | None) -> str | None:
    """A threshold: bounded like the readings it is compared with."""
    if value is None:
        return None
    problem = value_problem(value)
    return None if problem is None else f"{field} {problem}"


def id_problem(field: str, value: int) -> str | None:
    if not 0 < value <= MAX_INT64:
        return f"{field} must be a positive integer (at most 2^63-1)"
    return None


class Checker:
    """Collects the problems of a body's fields, then raises them all at once."""

    def __init__(self, what: str) -> None:
        self.what = what
        self.details: Details = []

    def add(self, field: str, problem: str | None) -> None:
        if problem is not None:
            self.details.append({"field": field, "message": problem})

    def name(self, field: str, value: Any) -> None:
        if isinstance(value, str):
            self.add(field, name_problem(field, value))

    def text(self, field: str, value: Any, max_len: int) -> None:
        if isinstance(value, str):
            self.add(field, text_problem(field, value, max_len))

    def number(self, field: str, value: Any) -> None:
        if isinstance(value, float | int):
            self.add(field, number_problem(field, float(value)))

    def ident(self, field: str, value: Any) -> None:
        if isinstance(value, int):
            self.add(field, id_problem(field, value))

    def done(self) -> None:
        if self.details:
            raise invalid(self.details, self.what)


def nfc_names(fields: dict[str, Any]) -> dict[str, Any]:
    """``fields`` with the names that make sensor keys (line, name) in NFC, as keys are kept:
    a name typed with a combining accent is the same name as one typed precomposed."""
    return {
        k: shared_text.nfc(v) if k in _NAME_FIELDS and isinstance(v, str) else v
        for k, v in fields.items()
    }


def set_fields(struct: msgspec.Struct) -> dict[str, Any]:
    """The fields a PATCH body set (msgspec.UNSET: not given)."""
    return {
        name: getattr(struct, name)
        for name in struct.__struct_fields__
        if getattr(struct, name) is not msgspec.UNSET
    }


__all__ = ["MAX_SEGMENT_LEN", "Checker", "decode", "invalid", "nfc_names", "set_fields"]
