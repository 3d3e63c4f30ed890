"""Request bodies of the OpenAI routes, validated at the front before any replica sees them.

A malformed or impossible request is the caller's problem: it gets a 400 (413
for an oversized body) in OpenAI's error shape, naming the offending field
(`param`), and never reaches a replica. That is what keeps one request from
taking an endpoint down: a prompt longer than the model's context used to kill
the runtime's batching worker for everyone.

Every OpenAI parameter a request may carry is either honoured by the serving
path or refused with a 400 naming it; fields OpenAI does not define are ignored,
as OpenAI does. Metadata that changes no output (`user`, `store`, `metadata`,
`service_tier`) is accepted.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictFloat, StrictInt, StrictStr, ValidationError

# The OpenAI parameters no serving path here implements: refused when set to anything but their default.
REFUSED = {
    "tools": "tool calling",
    "tool_choice": "tool calling",
    "functions": "function calling",
    "function_call": "function calling",
    "parallel_tool_calls": "tool calling",
    "logit_bias": "logit bias",
    "suffix": "insertion (suffix)",
    "audio": "audio output",
    "modalities": "output modalities other than text",
    "prediction": "predicted outputs",
    "web_search_options": "web search",
    "reasoning_effort": "reasoning models",
}
# Declared (so their types and ranges are checked) but refused when set: what the batched replica cannot honour.
# Penalties: transformers' batching manager has no per-request processor for them.
NOT_HONOURED = {
    "presence_penalty": "presence penalties",
    "frequency_penalty": "frequency penalties",
}
MAX_N = 8  # choices per request: each is a full generation on the replica
MAX_STOP = 4  # as OpenAI


class RequestError(Exception):
    """A client error at a field: becomes `{"error": {"message", "type", "param", "code"}}`."""

    def __init__(self, status: int, message: str, param: str | None = None):
        super().__init__(message)
        self.status, self.message, self.param = status, message, param

    def body(self) -> dict[str, Any]:
        kind = "invalid_request_error" if self.status < 500 else "server_error"
        return {"error": {"message": self.message, "type": kind, "param": self.param, "code": None}}


Number = Annotated[StrictFloat | StrictInt, Field()]


class TextPart(BaseModel):
    model_config = ConfigDict(extra="allow")

    type: Literal["text"]
    text: StrictStr


class Message(BaseModel):
    model_config = ConfigDict(extra="allow")

    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: StrictStr | list[TextPart] | None = None
    name: StrictStr | None = None

    def text(self) -> str:
        if isinstance(self.content, list):
            return "".join(p.text for p in self.content)
        return self.content or ""


class StreamOptions(BaseModel):
    model_config = ConfigDict(extra="allow")

    include_usage: StrictBool = False


class _Sampling(BaseModel):
    """The fields both routes share."""

    model_config = ConfigDict(extra="allow")

    model: StrictStr | None = None
    max_tokens: StrictInt | None = Field(default=None, ge=0)  # 0 only to score an echoed prompt
    temperature: Number | None = Field(default=None, ge=0, le=2)
    top_p: Number | None = Field(default=None, gt=0, le=1)
    n: StrictInt = Field(default=1, ge=1, le=MAX_N)
    stop: StrictStr | list[StrictStr] | None = None
    seed: StrictInt | None = None
    presence_penalty: Number | None = Field(default=None, ge=-2, le=2)
    frequency_penalty: Number | None = Field(default=None, ge=-2, le=2)
    stream: StrictBool = False
    stream_options: StreamOptions | None = None
    user: StrictStr | None = None

    def stops(self) -> list[str]:
        if self.stop is None:
            return []
        return [self.stop] if isinstance(self.stop, str) else list(self.stop)


class ChatRequest(_Sampling):
    messages: list[Message] = Field(min_length=1)
    max_completion_tokens: StrictInt | None = Field(default=None, ge=1)
    logprobs: StrictBool = False
    top_logprobs: StrictInt | None = Field(default=None, ge=0, le=20)

    def requested_tokens(self) -> int | None:
        return self.max_completion_tokens if self.max_completion_tokens is not None else self.max_tokens

    def wants_logprobs(self) -> int | None:
        """Alternatives per token wanted (0: only the chosen token's), or None."""
        return (self.top_logprobs or 0) if self.logprobs else None


Prompt = StrictStr | list[StrictInt]  # text, or token ids of the model's tokenizer


class CompletionRequest(_Sampling):
    prompt: StrictStr | list[StrictStr] | list[StrictInt] | list[list[StrictInt]] = Field(min_length=1)
    logprobs: StrictInt | None = Field(default=None, ge=0, le=5)
    echo: StrictBool = False
    best_of: StrictInt | None = Field(default=None, ge=1, le=MAX_N)

    def requested_tokens(self) -> int | None:
        return self.max_tokens

    def wants_logprobs(self) -> int | None:
        return self.logprobs

    def scoring(self) -> bool:
        """Echo the prompt with its log probabilities and generate nothing: what loglikelihood
        evaluations ask of a completions endpoint."""
        return self.echo and self.max_tokens == 0

    def prompts(self) -> list[Prompt]:
        """One entry per prompt: a string, or one prompt's token ids."""
        if isinstance(self.prompt, str) or all(isinstance(t, int) for t in self.prompt):
            return [self.prompt]  # type: ignore[list-item]
        return list(self.prompt)  # type: ignore[arg-type]


Generation = ChatRequest | CompletionRequest


def _param(loc: Sequence[int | str]) -> str:
    """A pydantic location as OpenAI names a parameter: messages[0].content."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif part not in ("str", "list[str]", "float", "int", "list[TextPart]", "function-after[...]"):
            out += f".{part}" if out else str(part)
    return out


def parse(raw: bytes, kind: type[ChatRequest] | type[CompletionRequest]) -> Generation:
    """Validate a request body; every failure is a RequestError naming the field."""
    try:
        data = json.loads(raw)
    except (UnicodeDecodeError, ValueError) as exc:
        raise RequestError(400, f"the body is not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise RequestError(400, f"the body must be a JSON object, not {type(data).__name__}")
    for name, what in REFUSED.items():
        if data.get(name) not in (None, [], {}, False):
            raise RequestError(400, f"{name!r} is not supported by this endpoint ({what})", name)
    fmt = data.get("response_format")
    if fmt is not None and fmt != {"type": "text"}:
        raise RequestError(400, "'response_format' other than {'type': 'text'} is not supported", "response_format")
    try:
        request = kind.model_validate(data)
    except ValidationError as exc:
        first = exc.errors(include_url=False)[0]
        param = _param(first["loc"])
        raise RequestError(400, f"invalid {param or 'body'}: {first['msg']}", param or None) from None
    scoring = isinstance(request, CompletionRequest) and request.scoring()
    if request.requested_tokens() == 0 and not scoring:
        raise RequestError(400, "'max_tokens' must be at least 1 (0 only scores an echoed prompt)", "max_tokens")
    for name, what in NOT_HONOURED.items():
        if getattr(request, name, None) not in (None, 0, 0.0):
            raise RequestError(400, f"{name!r} is not supported by this endpoint ({what})", name)
    # One batch shares one random generator, so a sampled request's tokens depend on its neighbours;
    # greedy decoding and scoring give the same answer for every seed.
    if request.seed is not None and not (scoring or request.temperature == 0):
        raise RequestError(
            400, "'seed' is supported with temperature 0 only (sampled requests share one batch's generator)", "seed"
        )
    if request.wants_logprobs() is not None and request.stream:
        raise RequestError(400, "'logprobs' is not supported with streaming", "logprobs")
    if isinstance(request, ChatRequest) and request.top_logprobs and not request.logprobs:
        raise RequestError(400, "'top_logprobs' needs 'logprobs': true", "top_logprobs")
    if len(request.stops()) > MAX_STOP:
        raise RequestError(400, f"'stop' takes at most {MAX_STOP} sequences", "stop")
    if any(not s for s in request.stops()):
        raise RequestError(400, "'stop' sequences must not be empty", "stop")
    if isinstance(request, CompletionRequest):
        if any(not p for p in request.prompts()):
            raise RequestError(400, "'prompt' must not be empty", "prompt")
        if request.best_of not in (None, request.n):
            raise RequestError(400, "'best_of' other than n is not supported", "best_of")
        if request.echo and request.stream:
            raise RequestError(400, "'echo' is not supported with streaming", "echo")
    elif any(m.content is None or not m.text() for m in request.messages if m.role == "user"):
        raise RequestError(400, "a user message needs non-empty 'content'", "messages")
    return request


def check_length(
    request: Generation, count: Callable[[Generation], list[int]], *, max_context: int, max_new_tokens: int
) -> int:
    """The tokens to generate, once the prompt(s) and that fit the context; else a 400 with both numbers."""
    requested = request.requested_tokens()
    field = (
        "max_completion_tokens" if isinstance(request, ChatRequest) and request.max_completion_tokens else "max_tokens"
    )
    new = min(requested, max_new_tokens) if requested is not None else max_new_tokens
    longest = max(count(request))
    if longest + new > max_context:
        where = "messages" if isinstance(request, ChatRequest) else "prompt"
        raise RequestError(
            400,
            f"this model's maximum context length is {max_context} tokens; the prompt uses {longest} tokens "
            f"and {field} asks for {new} more ({longest + new} in total). Shorten the {where} or lower {field}.",
            where if longest >= max_context else field,
        )
    return new
