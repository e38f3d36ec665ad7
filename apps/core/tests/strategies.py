"""
Hypothesis strategies for hostile WebSocket input, and the checks every answer must pass.

A frame is built as wire text, not as a Python object, so the fuzzing reaches what a client can
really send: number literals out of a double's range, `\\ud800` escapes that decode to lone
surrogates, duplicate keys, nesting past the parser's recursion limit, the literals NaN and
Infinity that Python's json accepts and browsers do not.
"""

import json
import math
from dataclasses import dataclass
from typing import Any

from hypothesis import strategies as st

from apps.core.protocol import MAX_DEPTH

# The limits every fuzzed socket runs under. The bucket does not refill during an example, so
# the message after the burst is always the one refused.
MAX_BYTES = 4096
BURST = 8
LIMITS = {"max_message_bytes": MAX_BYTES, "messages_per_second": 0.01, "burst": BURST}

# Every `code` an error envelope may carry (apps/core/protocol.py).
ERROR_CODES = {
    "binary_not_supported",
    "invalid_json",
    "not_an_object",
    "missing_type",
    "unknown_type",
    "invalid_close_code",
    "invalid_reason",
}


@dataclass(frozen=True)
class Frame:
    """One client frame: text or bytes."""

    text: str | None = None
    data: bytes | None = None

    @property
    def event(self) -> dict[str, Any]:
        """The `websocket.receive` event daphne would hand the application."""
        if self.text is not None:
            return {"type": "websocket.receive", "text": self.text}
        return {"type": "websocket.receive", "bytes": self.data}

    @property
    def size(self) -> int:
        """Bytes on the wire."""
        return len(self.text.encode()) if self.text is not None else len(self.data or b"")


def _array(items: list[str]) -> str:
    return "[" + ",".join(items) + "]"


def _object(pairs: list[tuple[str, str]]) -> str:
    return "{" + ",".join(f"{key}:{value}" for key, value in pairs) + "}"


# Strings with any code point, lone surrogates included: json.dumps writes those as \udXXX.
any_string = st.text(st.characters(exclude_categories=()), max_size=12)
string_literal = any_string.map(json.dumps) | st.text(max_size=12).map(
    lambda s: json.dumps(s, ensure_ascii=False)
)
number_literal = (
    st.from_regex(r"-?(0|[1-9][0-9]{0,6})(\.[0-9]{1,6})?([eE][+-]?[0-9]{1,3})?", fullmatch=True)
    | st.integers().map(str)
    | st.sampled_from(["1e400", "-1e400", "1e-400", "9" * 5000, "NaN", "Infinity", "-Infinity"])
)
scalar_literal = st.sampled_from(["null", "true", "false"]) | number_literal | string_literal
json_literal = st.recursive(
    scalar_literal,
    lambda inner: (
        st.lists(inner, max_size=5).map(_array)
        | st.lists(st.tuples(string_literal, inner), max_size=5).map(_object)
    ),
    max_leaves=25,
)
# Near and over the size limits the fuzz tests set (4 KiB).
long_string = st.integers(0, 6000).map(lambda n: json.dumps("x" * n))
# Around the nesting limit (100), around the recursion limit (about 1,000), past the size limit.
depth = st.integers(1, 3000) | st.integers(95, 105) | st.integers(960, 1000)
deep_array = depth.map(lambda n: "[" * n + "]" * n)
deep_echo = depth.map(lambda n: '{"type": "echo", "data": ' + "[" * n + "]" * n + "}")

command_type = (
    st.sampled_from(["echo", "info", "close", "chat", "who", "ECHO", "", "__class__"]).map(
        json.dumps
    )
    | json_literal
)
close_code = st.sampled_from(["1000", "1001", "1005", "2999", "3000", "4429", "4999", "5000"])


def command(extra_fields: dict[str, st.SearchStrategy[str]] | None = None) -> st.SearchStrategy:
    """Objects shaped like the endpoint's commands, with fields of any type and value."""
    optional = {
        '"data"': json_literal | long_string,
        '"code"': close_code | number_literal | json_literal,
        '"reason"': string_literal | long_string | json_literal,
        **(extra_fields or {}),
    }
    return st.fixed_dictionaries({'"type"': command_type}, optional=optional).map(
        lambda fields: _object(list(fields.items()))
    )


def frames(extra_fields: dict[str, st.SearchStrategy[str]] | None = None) -> st.SearchStrategy:
    """One hostile frame: mostly command-shaped, also any JSON, any text, any bytes."""
    text = st.one_of(
        command(extra_fields),
        command(extra_fields),
        json_literal,
        st.text(max_size=200),
        deep_array,
        deep_echo,
        long_string,
    )
    return text.map(lambda t: Frame(text=t)) | st.binary(max_size=5000).map(lambda b: Frame(data=b))


def _reject(literal: str) -> None:
    raise ValueError(literal)


def _finite(literal: str) -> float:
    number = float(literal)
    if not math.isfinite(number):
        raise ValueError(literal)
    return number


def strict_json(text: str) -> Any:
    """Parse as a browser's JSON.parse would: no NaN or Infinity, no out-of-range numbers."""
    return json.loads(text, parse_constant=_reject, parse_float=_finite)


def nesting(value: Any) -> int:
    """How deep arrays and objects nest in a decoded value."""
    if isinstance(value, list):
        return 1 + max(map(nesting, value), default=0)
    if isinstance(value, dict):
        return 1 + max(map(nesting, value.values()), default=0)
    return 0


def is_unicode(value: Any) -> bool:
    """Whether every string in a decoded value, keys included, has a UTF-8 form."""
    if isinstance(value, str):
        try:
            value.encode()
        except UnicodeEncodeError:
            return False
        return True
    if isinstance(value, list):
        return all(map(is_unicode, value))
    if isinstance(value, dict):
        return all(map(is_unicode, value)) and all(map(is_unicode, value.values()))
    return True


def parse_command(frame: Frame) -> dict[str, Any] | str:
    """The command object in a frame, or the error code the endpoint must answer with."""
    if frame.text is None:
        return "binary_not_supported"
    try:
        content = strict_json(frame.text)
        if nesting(content) > MAX_DEPTH or not is_unicode(content):
            return "invalid_json"
    except (ValueError, RecursionError):
        return "invalid_json"
    if not isinstance(content, dict):
        return "not_an_object"
    if not isinstance(content.get("type"), str):
        return "missing_type"
    return content


def envelope(output: dict[str, Any], error_codes: set[str] = ERROR_CODES) -> dict[str, Any]:
    """A sent message must be a text frame holding a strict-JSON object with a string type."""
    assert output["type"] == "websocket.send", output
    assert output.get("text") is not None and output.get("bytes") is None, output
    assert "Traceback" not in output["text"]
    reply = strict_json(output["text"])
    assert isinstance(reply, dict) and isinstance(reply.get("type"), str), reply
    if reply["type"] == "error":
        assert reply["code"] in error_codes, reply
        assert isinstance(reply["message"], str) and reply["message"], reply
    return reply
