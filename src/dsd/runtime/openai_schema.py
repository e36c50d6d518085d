"""The OpenAI-compatible request bodies the edge accepts, and its error responses.

Strict (pydantic strict mode): `max_tokens: "10"`, `max_tokens: true` or `stream: "yes"`
are type errors, not coerced. Unknown parameters are refused by name; OpenAI parameters
dsd does not implement (log probabilities, echo, best_of, logit bias, penalties, tools,
response formats) are refused by name unless they carry their no-op value. Text must be
valid Unicode: a lone surrogate such as "\\ud800" is refused (a tokenizer cannot encode it).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi.responses import JSONResponse
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

MAX_TOP_K = 2**31 - 1  # the wire format carries top_k as uint32


class ErrorDetail(BaseModel):
    message: str
    type: str
    param: str | None = None
    code: int


class ErrorResponse(BaseModel):
    error: ErrorDetail


_ERRORS = {400: "invalid request (one line naming the parameter)",
           401: "missing or wrong API key (when the edge has one)",
           404: "unknown model or path", 413: "request body over the size limit",
           415: "request body is not JSON",
           429: "queue full or queue deadline passed: retry after Retry-After seconds",
           503: "no verifier available"}


def error_responses(*codes: int) -> dict:
    """OpenAPI `responses` for the routes: the error codes they answer, in OpenAI's shape."""
    out: dict = {c: {"model": ErrorResponse, "description": _ERRORS[c]} for c in codes}
    if 429 in codes:
        out[429]["headers"] = {"Retry-After": {"schema": {"type": "integer"},
                                               "description": "seconds to wait"}}
    return out


def error(status: int, message: str, kind: str = "invalid_request_error",
          param: str | None = None, headers: dict[str, str] | None = None) -> JSONResponse:
    """An error in OpenAI's shape, with a one-line message."""
    return JSONResponse(status_code=status, headers=headers, content={
        "error": {"message": message, "type": kind, "param": param, "code": status}})


def _valid_unicode(text: str) -> str:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise ValueError(f"contains a lone surrogate (U+{ord(text[exc.start]):04X}) at "
                         f"character {exc.start}: not valid Unicode") from None
    return text


Text = Annotated[str, AfterValidator(_valid_unicode)]

# Parameter -> (is it at its no-op value?, why it is refused otherwise)
_UNSUPPORTED = {
    "logprobs": (lambda v: v in (None, False, 0), "log probabilities are not returned"),
    "top_logprobs": (lambda v: v in (None, 0), "log probabilities are not returned"),
    "echo": (lambda v: v in (None, False), "the prompt is not echoed"),
    "best_of": (lambda v: v in (None, 1), "one completion per request"),
    "suffix": (lambda v: v in (None, ""), "suffixes are not supported"),
    "logit_bias": (lambda v: not v, "logit bias is not supported"),
    "frequency_penalty": (lambda v: v in (None, 0), "penalties are not supported"),
    "presence_penalty": (lambda v: v in (None, 0), "penalties are not supported"),
    "repetition_penalty": (lambda v: v in (None, 1), "penalties are not supported"),
    "response_format": (lambda v: not v or v == {"type": "text"},
                        "only plain text responses are supported"),
    "tools": (lambda v: not v, "tool calling is not supported"),
    "tool_choice": (lambda v: v in (None, "none"), "tool calling is not supported"),
    "functions": (lambda v: not v, "function calling is not supported"),
    "function_call": (lambda v: v in (None, "none"), "function calling is not supported"),
    "parallel_tool_calls": (lambda v: v in (None, False), "tool calling is not supported"),
}


class _Base(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid")
    model: Text | None = None
    max_tokens: int | None = Field(default=None, ge=1)
    temperature: float = Field(default=1.0, ge=0.0, le=2.0)
    top_p: float = Field(default=1.0, gt=0.0, le=1.0)
    top_k: int = Field(default=0, ge=0, le=MAX_TOP_K)
    stop: Text | list[Text] | None = None
    seed: int | None = Field(default=None, ge=0, le=2**63 - 1)
    stream: bool = False
    n: int = Field(default=1, ge=1, le=1)
    ignore_eos: bool = False
    stream_options: dict[str, Any] | None = None
    user: Text | None = None  # accepted and ignored, as an end-user id for the caller's logs
    # Recognized but not implemented: refused unless at their no-op value (see _UNSUPPORTED).
    logprobs: bool | int | None = None
    top_logprobs: int | None = None
    echo: bool | None = None
    best_of: int | None = None
    suffix: Text | None = None
    logit_bias: dict[str, Any] | None = None
    frequency_penalty: float | None = None
    presence_penalty: float | None = None
    repetition_penalty: float | None = None
    response_format: dict[str, Any] | None = None
    tools: list[Any] | None = None
    tool_choice: Any = None
    functions: list[Any] | None = None
    function_call: Any = None
    parallel_tool_calls: bool | None = None

    @model_validator(mode="after")
    def _refuse_unsupported(self):
        for name, (is_noop, why) in _UNSUPPORTED.items():
            if name in self.model_fields_set and not is_noop(getattr(self, name)):
                raise ValueError(f"unsupported parameter {name!r}: {why}")
        return self


class CompletionRequest(_Base):
    prompt: Text | list[int] | list[Text]


class TextPart(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid")
    type: Literal["text"]
    text: Text


class ChatMessage(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid")
    role: Literal["system", "user", "assistant", "tool", "developer"]
    content: Text | list[TextPart] | None = ""
    name: Text | None = None


class ChatRequest(_Base):
    messages: list[ChatMessage] = Field(min_length=1)
    max_completion_tokens: int | None = Field(default=None, ge=1)


_SCALAR_TAGS = {"str", "int", "float", "bool", "none", "dict", "list"}


def _field_path(loc) -> list[str]:
    """pydantic's error location without the body prefix and union member tags
    ('str', 'list[int]', 'function-after[...]', model names)."""
    return [str(p) for p in loc
            if p != "body" and not (isinstance(p, str) and (
                "[" in p or p in _SCALAR_TAGS or p[:1].isupper()))]


def validation_message(errors: list[dict]) -> tuple[str, str | None]:
    """One line and the offending parameter for pydantic's errors. Of a union's errors the
    deepest is the telling one ('prompt.1: not an integer' rather than 'not a string')."""
    if not errors:
        return "invalid request", None
    e = max(errors, key=lambda err: len(_field_path(err.get("loc", ()))))
    path = _field_path(e.get("loc", ()))
    param = path[0] if path else None
    where = ".".join(path) or "body"
    if e.get("type") == "extra_forbidden":
        return f"unsupported parameter {where!r}", param
    msg = str(e.get("msg", "invalid value")).removeprefix("Value error, ")
    if msg.startswith("unsupported parameter"):
        return msg, msg.split("'")[1] if "'" in msg else None
    return f"invalid request: {where}: {msg}", param
