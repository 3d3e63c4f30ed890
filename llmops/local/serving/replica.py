"""One replica: a model version on transformers' continuous-batching manager behind a minimal HTTP layer.

Why not `transformers serve`: under continuous batching that server builds the
batching manager from the *first* request's generation config, so later
requests' `temperature`, `top_p` and `stop` were silently ignored, and a prompt
longer than the KV cache killed its batching worker for good (every later
request answered 503 while the process stayed up). Here the manager is driven
directly (`model.init_continuous_batching`), which keeps transformers' batched
generation and gives each request its own:

- `temperature` and `top_p` (the manager's per-request logits processors; a
  temperature of 0 is argmax, run as a temperature of 1e-5 in the sampling batch);
- `stop` sequences (the text is checked as tokens arrive; the request is
  cancelled in the batch at the first match);
- `n` choices (n requests in the same batch);
- cancellation when the client goes away;
- `logprobs` (and `top_logprobs`) on both routes: after generating, one forward pass
  over prompt and answer gives each token's log probability and the most likely
  alternatives; with `echo` on `/v1/completions` the prompt's too, and `max_tokens: 0`
  scores a prompt without generating (what loglikelihood evaluations ask of an
  endpoint, e.g. lm-eval's `local-completions`); prompts may be token ids;
- `seed` where it changes nothing: greedy requests (temperature 0) and scoring.

Requests are validated with the front's models and checked against the context
before they reach the batch, so a replica reached directly is as safe as one
behind the front. `/health` is 503 once the batching thread has died; the
supervisor restarts such a replica.

    python -m llmops.local.serving.replica MODEL_DIR --port PORT [--concurrency N --max-context T]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import sys
import threading
import time
import uuid
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse

from llmops.local.serving import sampling_fast_path
from llmops.local.serving.prompts import Prompter
from llmops.local.serving.sampling_fast_path import GREEDY_TEMPERATURE
from llmops.local.serving.validation import (
    ChatRequest,
    CompletionRequest,
    Generation,
    RequestError,
    check_length,
    parse,
)

# Below this a temperature is argmax in all but name, and dividing float32 logits by, say, 1e-300 gives
# infinities that would fail the sampling step (and, in the batch, every request in it).
MIN_SAMPLING_TEMPERATURE = 1e-3
PAGE = 256  # tokens per KV page: ContinuousBatchingConfig's default


@dataclass
class Choice:
    """One generation of a request, as it progresses."""

    rid: str
    tokens: list[int] = field(default_factory=list)
    text: str = ""
    finish: str | None = None
    error: str | None = None


class Engine:
    """The model, its tokenizer and the continuous-batching manager, with one request's lifecycle."""

    def __init__(self, model_dir: str, *, device: str, dtype: str, concurrency: int, max_context: int, solo: bool):
        import torch
        from transformers import AutoModelForCausalLM, ContinuousBatchingConfig

        self.prompter = Prompter.load(model_dir)
        self.tokenizer = self.prompter.tokenizer
        self.max_context = max_context
        torch_dtype = "auto" if dtype == "auto" else getattr(torch, dtype)
        model: Any = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch_dtype)
        target = "cuda" if device == "auto" and torch.cuda.is_available() else device
        if target not in ("auto", "cpu"):
            model = model.to(target)
        self.model = model.eval()
        base = self.model.generation_config
        self.default_temperature = float(base.temperature or 1.0) if base.do_sample else 0.0
        self.default_top_p = float(base.top_p or 1.0) if base.do_sample else 1.0
        config = base.__class__.from_dict(base.to_dict())
        # Sampling with per-request temperature and top_p: the manager creates those processors only
        # when its own defaults are not neutral, and every request then passes its own values.
        config.do_sample, config.temperature, config.top_p, config.top_k = True, 0.5, 0.99, None
        config.max_new_tokens = max_context
        pages = -(-max_context // PAGE)
        cb = ContinuousBatchingConfig(
            num_blocks=max(8, 2 * concurrency * pages),
            max_batch_tokens=max(256, max_context),
            per_request_processors=True,
        )
        self.eos = self.tokenizer.eos_token_id
        # The batching manager costs per step what a lone request does not need (measured on CPU: 1.3x the
        # latency of generate() greedy, 1.6x sampling). A request alone on the replica runs on a second copy
        # of the weights with plain generate(); the manager rewires the first copy's attention for its pages.
        self.solo: Any = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch_dtype) if solo else None
        if self.solo is not None:
            self.solo.train(False)
        self.active = 0  # requests being served, either way
        self.model_dir = model_dir
        self._scorer: Any = None  # a copy for prompt scoring where there is no solo copy, loaded on first use
        self._scorer_lock = threading.Lock()
        unpatched = sampling_fast_path.install()
        if unpatched:
            print(f"replica: sampling runs unpatched (slower, same answers): {unpatched}", file=sys.stderr)
        self.manager = self.model.init_continuous_batching(generation_config=config, continuous_batching_config=cb)
        self.manager.start()

    def sampling(self, request: Generation) -> tuple[float, float]:
        """The request's temperature (0: argmax) and top_p, defaulting to the model's generation config."""
        temperature = float(request.temperature if request.temperature is not None else self.default_temperature)
        top_p = float(request.top_p if request.top_p is not None else self.default_top_p)
        return (temperature if temperature >= MIN_SAMPLING_TEMPERATURE else 0.0), top_p

    def generate_alone(self, ids: list[int], max_new: int, request: Generation, cancelled: threading.Event) -> Choice:
        """One choice with generate() on the solo copy (blocking: run it in a thread)."""
        import torch
        from transformers import StoppingCriteria, StoppingCriteriaList

        class Cancelled(StoppingCriteria):
            def __call__(self, input_ids: Any, scores: Any, **_: Any) -> Any:
                return torch.full((input_ids.shape[0],), cancelled.is_set(), dtype=torch.bool)

        temperature, top_p = self.sampling(request)
        sampling = {"do_sample": True, "temperature": temperature, "top_p": top_p, "top_k": 0}
        with torch.inference_mode():
            out = self.solo.generate(
                torch.tensor([ids]),
                max_new_tokens=max_new,
                stopping_criteria=StoppingCriteriaList([Cancelled()]),
                pad_token_id=self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else self.eos,
                **(sampling if temperature > 0 else {"do_sample": False}),
            )
        choice = Choice("solo", tokens=out[0, len(ids) :].tolist())
        choice.text = self.decode(choice.tokens)
        ended_on_eos = bool(choice.tokens) and choice.tokens[-1] == self.eos
        choice.finish = "stop" if ended_on_eos or len(choice.tokens) < max_new else "length"
        return choice

    def score(self, ids: list[int], top: int) -> dict[str, Any]:
        """Each token's log probability given the ones before it (the first has none) and the `top`
        most likely at each position, from one forward pass over prompt and answer (blocking: run it
        in a thread). Log probabilities are the model's own (temperature 1), as OpenAI reports them.
        It runs on the solo copy, or a copy loaded for it: the batching manager owns the first
        copy's attention."""
        import torch

        with self._scorer_lock:
            if self.solo is None and self._scorer is None:
                from transformers import AutoModelForCausalLM

                loaded: Any = AutoModelForCausalLM.from_pretrained(self.model_dir, dtype=self.model.dtype)
                loaded.train(False)
                self._scorer = loaded
            scorer = self.solo if self.solo is not None else self._scorer
        with torch.inference_mode():
            logits = scorer(torch.tensor([ids])).logits[0].float()
        logp = torch.log_softmax(logits, dim=-1)
        chosen: list[float | None] = [None, *(float(logp[i - 1, t]) for i, t in enumerate(ids) if i > 0)]
        alternatives: list[dict[str, float] | None] = [None]
        for i in range(1, len(ids)):
            values, indices = torch.topk(logp[i - 1], k=max(1, top))
            alternatives.append({self.decode_token(int(t)): float(v) for v, t in zip(values, indices, strict=True)})
        return {"tokens": [self.decode_token(t) for t in ids], "token_logprobs": chosen, "top_logprobs": alternatives}

    def kept_tokens(self, choice: Choice) -> list[int]:
        """The generated tokens behind the choice's text (a stop sequence cuts the text, not the tokens)."""
        if self.decode(choice.tokens) == choice.text:
            return choice.tokens
        kept: list[int] = []
        for token in choice.tokens:
            if len(self.decode([*kept, token])) > len(choice.text):
                break
            kept.append(token)
        return kept

    def decode_token(self, token: int) -> str:
        return str(self.tokenizer.decode([token]))

    def alive(self) -> str | None:
        """None while the batching thread runs, else why not."""
        status = self.manager.background_thread_status
        if status.fatal_error is not None:
            return f"batching worker died: {status.fatal_error}"
        if not self.manager.is_running():
            return "batching worker stopped"
        return None

    def close(self, timeout: float | None = 30.0) -> None:
        """Stop the batching thread (not a daemon: a process keeps running until it ends)."""
        with contextlib.suppress(Exception):
            self.manager.stop(block=timeout is not None, timeout=timeout)

    def cancel(self, rid: str) -> None:
        self.manager.cancel_request(rid)
        router = self.manager.output_router
        with router._lock:
            router.result_handlers.pop(rid, None)

    def decode(self, tokens: list[int]) -> str:
        return str(self.tokenizer.decode(tokens, skip_special_tokens=True))


def _first_stop(text: str, stops: Sequence[str]) -> int | None:
    found = [i for i in (text.find(s) for s in stops) if i >= 0]
    return min(found) if found else None


async def _run(engine: Engine, choice: Choice, queue: asyncio.Queue[Any], max_new: int, stops: Sequence[str]) -> bool:
    """Take the next output of a choice; True once it is finished (length, eos, stop or error)."""
    out = await queue.get()
    if out.error is not None:
        choice.error, choice.finish = str(out.error), "error"
        return True
    choice.tokens = list(out.generated_tokens)
    text = engine.decode(choice.tokens)
    cut = _first_stop(text, stops) if stops else None
    if cut is not None:
        choice.text, choice.finish = text[:cut], "stop"
        engine.cancel(choice.rid)
        return True
    # Hold back a partial multi-byte character, and any tail that may be the start of a stop sequence.
    choice.text = text
    if out.is_finished():
        ended_on_eos = bool(choice.tokens) and choice.tokens[-1] == engine.eos
        choice.finish = "stop" if ended_on_eos or len(choice.tokens) < max_new else "length"
        return True
    return False


def _safe_prefix(text: str, stops: Sequence[str], finished: bool) -> str:
    """What of the text may be sent already: not a trailing partial character, nor a possible stop's start."""
    if finished:
        return text
    end = len(text.rstrip("\ufffd"))
    for s in stops:
        for k in range(min(len(s) - 1, end), 0, -1):
            if text[:end].endswith(s[:k]):
                end -= k
                break
    return text[:end]


def create_app(engine: Engine) -> FastAPI:
    app = FastAPI(title="llmops replica")

    @app.get("/health")
    async def health() -> JSONResponse:
        reason = engine.alive()
        body = {"status": "ok"} if reason is None else {"status": "unhealthy", "reason": reason}
        return JSONResponse(body, status_code=200 if reason is None else 503)

    async def generate(request: Request, kind: type[ChatRequest] | type[CompletionRequest]) -> Response:
        try:
            body = parse(await request.body(), kind)
            prompts = engine.prompter.encode(body)
            room = engine.max_context - max(len(p) for p in prompts)  # without max_tokens: fill the context
            max_new = check_length(
                body, lambda _b: [len(p) for p in prompts], max_context=engine.max_context, max_new_tokens=max(1, room)
            )
            if engine.alive() is not None:
                raise RequestError(503, str(engine.alive()))
        except RequestError as exc:
            return JSONResponse(exc.body(), status_code=exc.status)
        if isinstance(body, CompletionRequest) and body.scoring():
            return await scored(body, prompts)
        simple = body.n == 1 and len(prompts) == 1 and not body.stream and not body.stops()
        if engine.solo is not None and engine.active == 0 and simple:
            engine.active += 1
            try:
                return await alone(request, body, prompts[0], max_new)
            finally:
                engine.active -= 1
        engine.active += 1
        try:
            return await batched(request, body, prompts, max_new)
        finally:
            engine.active -= 1

    async def scored(body: CompletionRequest, prompts: list[list[int]]) -> Response:
        """Each prompt echoed (with its log probabilities when asked); nothing generated."""
        choices = [Choice("score", finish="length") for _ in prompts for _ in range(body.n)]
        return await answer(body, choices, prompts)

    async def answer(body: Generation, choices: list[Choice], prompts: list[list[int]]) -> Response:
        """The non-streamed answer, with each choice's log probabilities when the request asks for them."""
        k = body.wants_logprobs()
        if k is None or any(c.error for c in choices):
            return _answer(body, choices, prompts, engine.prompter)
        logprobs = []
        for i, c in enumerate(choices):
            ids = prompts[i // body.n] if isinstance(body, CompletionRequest) else prompts[0]
            scored_ids = [*ids, *engine.kept_tokens(c)]
            lp = await asyncio.to_thread(engine.score, scored_ids, k)
            echoed = isinstance(body, CompletionRequest) and body.echo
            logprobs.append(_logprobs(lp, 0 if echoed else len(ids), k, chat=isinstance(body, ChatRequest)))
        return _answer(body, choices, prompts, engine.prompter, logprobs)

    async def alone(request: Request, body: Generation, ids: list[int], max_new: int) -> Response:
        cancelled = threading.Event()
        work = asyncio.ensure_future(asyncio.to_thread(engine.generate_alone, ids, max_new, body, cancelled))
        gone: asyncio.Future[Any] = asyncio.ensure_future(_disconnected(request))
        try:
            done, _ = await asyncio.wait([gone, work], return_when=asyncio.FIRST_COMPLETED)
        finally:
            gone.cancel()
        if work not in done:
            cancelled.set()  # generate() stops at its next token
            return Response(status_code=499)
        return await answer(body, [work.result()], [ids])

    async def batched(request: Request, body: Generation, prompts: list[list[int]], max_new: int) -> Response:
        chat = isinstance(body, ChatRequest)
        stops = body.stops()
        streaming = body.stream or bool(stops)
        choices: list[Choice] = []
        queues: list[asyncio.Queue[Any]] = []
        try:
            for ids in prompts:
                for _ in range(body.n):
                    rid = f"r-{uuid.uuid4().hex}"
                    choice = Choice(rid)
                    # Listen before submitting: a short request can finish before a later registration.
                    queue: asyncio.Queue[Any] = asyncio.Queue()
                    engine.manager.register_result_handler(rid, queue.put_nowait)
                    choice.rid = _submit(engine, ids, max_new, body, streaming, rid)
                    choices.append(choice)
                    queues.append(queue)
        except RequestError as exc:
            for c in choices:
                engine.cancel(c.rid)
            return JSONResponse(exc.body(), status_code=exc.status)
        created, ident = int(time.time()), f"{'chatcmpl' if chat else 'cmpl'}-{uuid.uuid4().hex[:24]}"
        prompt_tokens = sum(len(p) for p in prompts)

        def usage() -> dict[str, int]:
            completion = sum(len(c.tokens) for c in choices)
            return {
                "prompt_tokens": prompt_tokens,
                "completion_tokens": completion,
                "total_tokens": prompt_tokens + completion,
            }

        if not body.stream:
            runs = [
                asyncio.ensure_future(_drain(engine, c, q, max_new, stops))
                for c, q in zip(choices, queues, strict=True)
            ]
            gone: asyncio.Future[Any] = asyncio.ensure_future(_disconnected(request))
            every: asyncio.Future[Any] = asyncio.gather(*runs)
            try:
                done, _ = await asyncio.wait([gone, every], return_when=asyncio.FIRST_COMPLETED)
                if gone in done:
                    return Response(status_code=499)
            finally:
                gone.cancel()
                for c, run in zip(choices, runs, strict=True):
                    if not run.done():
                        run.cancel()
                        engine.cancel(c.rid)
            return await answer(body, choices, prompts)

        include_usage = bool(body.stream_options and body.stream_options.include_usage)

        async def events() -> AsyncIterator[bytes]:
            kind_name = "chat.completion.chunk" if chat else "text_completion"

            def event(index: int, piece: str | None, finish: str | None, opening: bool = False) -> bytes:
                if chat:
                    delta = {"role": "assistant", "content": ""} if opening else {"content": piece} if piece else {}
                    c = {"index": index, "delta": delta, "finish_reason": finish, "logprobs": None}
                else:
                    c = {"index": index, "text": piece or "", "finish_reason": finish, "logprobs": None}
                data = {"id": ident, "object": kind_name, "created": created, "model": "", "choices": [c]}
                return f"data: {json.dumps(data)}\n\n".encode()

            sent = [0] * len(choices)
            try:
                if chat:
                    for i in range(len(choices)):
                        yield event(i, None, None, opening=True)
                pending = set(range(len(choices)))
                waiting = {
                    asyncio.ensure_future(_run(engine, choices[i], queues[i], max_new, stops)): i for i in pending
                }
                while waiting:
                    done, _ = await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
                    for task in done:
                        i = waiting.pop(task)
                        c = choices[i]
                        finished = task.result()
                        if c.error:
                            yield f"data: {json.dumps({'error': {'message': c.error}})}\n\n".encode()
                            return
                        ready = _safe_prefix(c.text, stops, finished)
                        if len(ready) > sent[i]:
                            yield event(i, ready[sent[i] :], None)
                            sent[i] = len(ready)
                        if finished:
                            yield event(i, None, c.finish)
                        else:
                            waiting[asyncio.ensure_future(_run(engine, c, queues[i], max_new, stops))] = i
                if include_usage:
                    data = {
                        "id": ident,
                        "object": kind_name,
                        "created": created,
                        "model": "",
                        "choices": [],
                        "usage": usage(),
                    }
                    yield f"data: {json.dumps(data)}\n\n".encode()
                yield b"data: [DONE]\n\n"
            finally:
                for c in choices:
                    if c.finish is None:
                        engine.cancel(c.rid)

        return StreamingResponse(events(), media_type="text/event-stream")

    @app.post("/v1/chat/completions")
    async def chat_completions(request: Request) -> Response:
        return await generate(request, ChatRequest)

    @app.post("/v1/completions")
    async def completions(request: Request) -> Response:
        return await generate(request, CompletionRequest)

    return app


def _answer(
    body: Generation,
    choices: list[Choice],
    prompts: list[list[int]],
    prompter: Prompter,
    logprobs: list[Any] | None = None,
) -> JSONResponse:
    """The non-streamed OpenAI answer for finished choices (a 500 if any failed)."""
    failed = [c.error for c in choices if c.error]
    if failed:
        return JSONResponse(RequestError(500, f"generation failed: {failed[0]}").body(), status_code=500)
    chat = isinstance(body, ChatRequest)
    out: list[dict[str, Any]] = []
    for i, c in enumerate(choices):
        entry: dict[str, Any] = {"index": i, "finish_reason": c.finish, "logprobs": logprobs[i] if logprobs else None}
        if isinstance(body, CompletionRequest):
            entry["text"] = (prompter.text(body.prompts()[i // body.n]) if body.echo else "") + c.text
        else:
            entry["message"] = {"role": "assistant", "content": c.text}
        out.append(entry)
    prompt_tokens = sum(len(p) for p in prompts)
    completion = sum(len(c.tokens) for c in choices)
    usage = {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion,
        "total_tokens": prompt_tokens + completion,
    }
    return JSONResponse(
        {
            "id": f"{'chatcmpl' if chat else 'cmpl'}-{uuid.uuid4().hex[:24]}",
            "object": "chat.completion" if chat else "text_completion",
            "created": int(time.time()),
            "model": "",
            "choices": out,
            "usage": usage,
        }
    )


def _logprobs(scored: dict[str, Any], start: int, k: int, *, chat: bool) -> dict[str, Any]:
    """OpenAI's `logprobs` of the tokens from `start` on: chat's `content` list, or completions' columns."""
    tokens = scored["tokens"][start:]
    chosen = scored["token_logprobs"][start:]
    alternatives = scored["top_logprobs"][start:]
    if chat:

        def entry(token: str, logprob: float | None, top: dict[str, float] | None) -> dict[str, Any]:
            return {"token": token, "logprob": logprob, "bytes": list(token.encode())}

        return {
            "content": [
                {
                    **entry(t, lp, None),
                    "top_logprobs": [entry(a, v, None) for a, v in list((top or {}).items())[:k]],
                }
                for t, lp, top in zip(tokens, chosen, alternatives, strict=True)
            ],
            "refusal": None,
        }
    offsets, at = [], 0
    for token in tokens:
        offsets.append(at)
        at += len(token)
    return {
        "tokens": tokens,
        "token_logprobs": chosen,
        "top_logprobs": alternatives if k > 0 else None,
        "text_offset": offsets,
    }


def _submit(engine: Engine, ids: list[int], max_new: int, body: Generation, streaming: bool, rid: str) -> str:
    temperature, top_p = engine.sampling(body)
    added = engine.manager.add_request(
        ids,
        request_id=rid,
        max_new_tokens=max_new,
        streaming=streaming,
        temperature=temperature if temperature > 0 else GREEDY_TEMPERATURE,
        top_p=top_p,
    )
    if added is None:
        raise RequestError(503, engine.alive() or "the batch accepts no new requests")
    return rid


async def _drain(engine: Engine, choice: Choice, queue: asyncio.Queue[Any], max_new: int, stops: Sequence[str]) -> None:
    while not await _run(engine, choice, queue, max_new, stops):
        pass


async def _disconnected(request: Request) -> None:
    """Returns once the client has gone away (the body was read already)."""
    while True:
        message = await request.receive()
        if message["type"] == "http.disconnect":
            return


REGISTRY_DTYPES = {"fp32": "float32", "bf16": "bfloat16", "fp16": "float16"}


def runtime_dtype(registry_dtype: str) -> str:
    """The registry's dtype as torch names it; quantized types load as stored."""
    return REGISTRY_DTYPES.get(registry_dtype, "auto")


def replica_argv(
    python: str,
    model_dir: str,
    *,
    port: int,
    device: str = "cpu",
    dtype: str = "float32",
    concurrency: int = 4,
    max_context: int = 256,
) -> list[str]:
    """The command line of one replica of `model_dir` (see `main`)."""
    return [
        python,
        "-m",
        "llmops.local.serving.replica",
        model_dir,
        "--port",
        str(port),
        "--device",
        device,
        "--dtype",
        dtype,
        "--concurrency",
        str(concurrency),
        "--max-context",
        str(max_context),
    ]


def _has_gpu() -> bool:
    import torch

    return bool(torch.cuda.is_available())


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m llmops.local.serving.replica", description=__doc__.splitlines()[0])
    parser.add_argument("model_dir")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--dtype", default="float32")
    parser.add_argument("--concurrency", type=int, default=16, help="sequences generated at once (KV cache size)")
    parser.add_argument("--max-context", type=int, default=256, help="prompt + generated tokens per sequence")
    parser.add_argument(
        "--solo",
        choices=("auto", "on", "off"),
        default="auto",
        help="serve a request alone on the replica with generate() on a second copy of the weights (auto: on CPU)",
    )
    args = parser.parse_args(argv)

    import uvicorn

    engine = Engine(
        args.model_dir,
        device=args.device,
        dtype=args.dtype,
        concurrency=args.concurrency,
        max_context=args.max_context,
        solo=args.solo == "on" or (args.solo == "auto" and not _has_gpu()),
    )
    try:
        uvicorn.run(
            create_app(engine), host=args.host, port=args.port, log_level="warning", timeout_graceful_shutdown=60
        )
    finally:
        engine.close(timeout=None)  # the process is exiting: ask the thread to stop, do not wait
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
