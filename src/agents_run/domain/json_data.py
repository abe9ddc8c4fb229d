"""JSON-only data: checked at the edge so that every adapter can store and send it unchanged."""

from __future__ import annotations

import copy
import json
import math
from typing import Any, cast

from agents_run.errors import InvalidArgument, PayloadTooLarge

JsonObject = dict[str, Any]

# The largest run input, event data or step result a store accepts, in bytes of compact UTF-8
# JSON (AGENTS_RUN_MAX_PAYLOAD_BYTES); the smallest limit still holds any RunFailed's data.
DEFAULT_MAX_PAYLOAD_BYTES = 1_048_576
MIN_MAX_PAYLOAD_BYTES = 16_384
MAX_MAX_PAYLOAD_BYTES = 64 * 1_048_576
PAYLOAD_LIMIT_SETTING = "AGENTS_RUN_MAX_PAYLOAD_BYTES"
_ENCODER = json.JSONEncoder(ensure_ascii=False, allow_nan=False, separators=(",", ":"))


def json_text(value: Any, what: str, max_bytes: int) -> str:
    """``value`` (checked JSON already) as compact JSON text: what a store writes, measured
    there once; ``PayloadTooLarge`` where its UTF-8 form is over ``max_bytes``."""
    text = _ENCODER.encode(value)
    # UTF-8 takes 1 to 4 bytes a character: encode only where the count of characters is unsure.
    if len(text) * 4 > max_bytes:
        size = len(text) if text.isascii() else len(text.encode("utf-8"))
        if size <= max_bytes:
            return text
        raise PayloadTooLarge(
            f"{what} is {size} bytes as JSON, over the limit of {max_bytes} bytes "
            f"({PAYLOAD_LIMIT_SETTING}): keep large data elsewhere and pass a reference to it"
        )
    return text


def check_payload_limit(max_bytes: object) -> int:
    """``max_bytes`` where it is a payload limit a store accepts; ``InvalidArgument`` otherwise."""
    if (
        isinstance(max_bytes, bool)
        or not isinstance(max_bytes, int)
        or not MIN_MAX_PAYLOAD_BYTES <= max_bytes <= MAX_MAX_PAYLOAD_BYTES
    ):
        raise InvalidArgument(
            f"max_payload_bytes must be an int from {MIN_MAX_PAYLOAD_BYTES} to "
            f"{MAX_MAX_PAYLOAD_BYTES}, got {max_bytes!r}"
        )
    return max_bytes


def ensure_json_object(value: object, what: str) -> JsonObject:
    """Return ``value`` if it is a JSON object (str keys, JSON values all the way down).

    Tuples, sets, bytes, NaN and non-string keys are rejected rather than silently converted,
    because a value that changes on its way through a store is a value that was lost.
    """
    json_object_copy(value, what)
    return cast(JsonObject, value)  # a dict: json_object_copy raised otherwise


def json_object_copy(value: object, what: str) -> JsonObject:
    """A copy of ``value``, checked as ``ensure_json_object`` checks it, in one pass: what a store
    keeps, so that a caller mutating its dict later changes nothing stored."""
    if not isinstance(value, dict):
        raise InvalidArgument(f"{what} must be a JSON object (a dict), got {type(value).__name__}")
    try:
        try:
            return _copy_object(value)
        except _NotJson:
            # Rare: the full check names the refused value, or accepts subclasses of the JSON
            # types (an OrderedDict, a str subclass), which a deep copy keeps as they are.
            _check(value, what)
            copied: JsonObject = copy.deepcopy(value)
            return copied
    except RecursionError:
        raise InvalidArgument(f"{what} is nested too deeply to be stored as JSON") from None


class _NotJson(Exception):
    """Raised by the fast copy; ``_check`` then finds the value again and says where it is."""


def _copy_object(value: dict[Any, Any]) -> JsonObject:
    copied = {}
    for key, item in value.items():
        if type(key) is not str or not _is_storable_text(key):
            raise _NotJson
        copied[key] = _copy_value(item)
    return copied


def _copy_value(value: object) -> Any:
    kind = type(value)
    if kind is str:
        if not _is_storable_text(value):  # type: ignore[arg-type]
            raise _NotJson
        return value
    if value is None or kind is int or kind is bool:
        return value
    if kind is float:
        if not math.isfinite(value):  # type: ignore[arg-type]
            raise _NotJson
        return value
    if kind is dict:
        return _copy_object(value)  # type: ignore[arg-type]
    if kind is list:
        return [_copy_value(item) for item in value]  # type: ignore[attr-defined]
    raise _NotJson  # subclasses and everything else: the full check decides


def _is_storable_text(text: str) -> bool:
    if "\x00" in text:
        return False
    if text.isascii():
        return True
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def ensure_json_value(value: object, what: str) -> Any:
    """Return ``value`` if it is JSON (an object, array, string, number, bool or None)."""
    try:
        _check(value, what)
    except RecursionError:
        raise InvalidArgument(f"{what} is nested too deeply to be stored as JSON") from None
    return value


def _check(value: object, path: str) -> None:
    if isinstance(value, str):
        _check_text(value, path)
        return
    if value is None or isinstance(value, (bool, int)):
        return
    if isinstance(value, float):
        if not math.isfinite(value):
            raise InvalidArgument(f"{path} is {value!r}: JSON has no NaN or infinity")
        return
    if isinstance(value, list):
        for index, item in enumerate(value):
            _check(item, f"{path}[{index}]")
        return
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                raise InvalidArgument(f"{path} has key {key!r}: JSON object keys must be strings")
            _check_text(key, f"a key of {path}")
            _check(item, f"{path}[{key!r}]")
        return
    raise InvalidArgument(
        f"{path} is a {type(value).__name__}: only dict, list, str, int, float, bool and None "
        "are JSON (convert it before passing it in)"
    )


def _check_text(text: str, path: str) -> None:
    # Every store must accept what one store accepts, and PostgreSQL's jsonb refuses NUL.
    if "\x00" in text:
        raise InvalidArgument(f"{path} contains the NUL character (\\u0000), which stores refuse")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidArgument(f"{path} is not valid Unicode text (a lone surrogate)") from None
