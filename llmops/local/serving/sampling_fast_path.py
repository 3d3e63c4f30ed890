"""A cheaper decoding step where a batch's own sampling settings make the work a no-op.

The replica runs one continuous-batching manager with per-request processors, so each
request keeps its own `temperature` and `top_p` (a manager built greedy ignores them,
which is what `transformers serve` did). transformers then runs, every step and for
every row, a temperature division, a top-p sort and a softmax + multinomial draw over
the vocabulary, also when no request in the batch asked for any of it: the common
greedy request is sent as a temperature of `GREEDY_TEMPERATURE`, whose one-hot draw is
the argmax. On the tiny model at 16 clients the manager alone made 3.5k tokens/s with
that work and 5.2k without (in process, one torch thread); on a real model it is a
smaller share of a step, but never useful. Per step, this skips:

- every row greedy: the processors, and the draw becomes argmax (the token the one-hot
  draw gives; among exactly equal logits, the first);
- every row at `top_p` 1.0: the top-p filter, which keeps every token there.

A batch with one sampled row runs transformers' own path unchanged. transformers has
no switch for this, so `install()` wraps the two methods of its processor list and
model runner, after checking they are where the pinned version has them: a release
that moved them runs unwrapped (slower, same answers), and the replica's log says so.
"""

from __future__ import annotations

import threading
from typing import Any

GREEDY_TEMPERATURE = 1e-5  # softmax at this temperature is one-hot on the argmax (ties aside)

_step = threading.local()  # the batching thread's verdict for the step in progress
counts = {"greedy_steps": 0, "top_p_skipped": 0, "sampled_steps": 0}  # which path each step took (tests read it)


def install() -> str | None:
    """Wrap transformers' per-step sampling; None once installed, else why it was not."""
    try:
        from transformers.generation.continuous_batching import cb_logits_processors as processors
        from transformers.generation.continuous_batching.model_runner import ModelRunner
    except ImportError as exc:
        return f"transformers' continuous batching moved ({exc})"
    processor_list = getattr(processors, "ContinuousBatchingLogitsProcessorList", None)
    temperature_cls = getattr(processors, "ContinuousBatchingTemperatureLogitsWarper", None)
    top_p_cls = getattr(processors, "ContinuousBatchingTopPLogitsWarper", None)
    base_cls = getattr(processors, "ContinuousBatchingLogitsProcessor", None)
    if None in (processor_list, temperature_cls, top_p_cls, base_cls) or not hasattr(ModelRunner, "_sample"):
        return "transformers' continuous-batching processors are not where this module expects them"
    assert processor_list is not None and temperature_cls is not None and top_p_cls is not None
    if getattr(processor_list, "_llmops_fast_path", False):
        return None
    _wrap_processors(processor_list, base_cls, temperature_cls, top_p_cls)
    _wrap_sample(ModelRunner)
    return None


def _wrap_processors(processor_list: Any, base_cls: Any, temperature_cls: Any, top_p_cls: Any) -> None:
    import torch

    def __call__(self: Any, input_ids: Any, scores: Any, args: Any) -> Any:
        rows = scores.size(0)
        indexed = []  # (processor, its row of per-request arguments or None)
        arg_id = 0
        for processor in self.logits_processor:
            if isinstance(processor, base_cls):
                indexed.append((processor, args[arg_id][:rows]))
                arg_id += 1
            else:
                indexed.append((processor, None))
        temperatures = [a.view(dtype=torch.float32) for p, a in indexed if isinstance(p, temperature_cls)]
        _step.greedy = bool(temperatures) and bool((temperatures[0] <= GREEDY_TEMPERATURE).all())
        if _step.greedy:
            counts["greedy_steps"] += 1
            return scores  # argmax ignores a positive scale and keeps the top token under any top_p
        counts["sampled_steps"] += 1
        for processor, arg in indexed:
            if arg is None:
                scores = processor(input_ids, scores)
            elif isinstance(processor, top_p_cls) and bool((arg.view(dtype=torch.float32) >= 1.0).all()):
                counts["top_p_skipped"] += 1
            else:
                scores = processor(scores, arg)
        return scores

    processor_list.__call__ = __call__
    processor_list._llmops_fast_path = True


def _wrap_sample(runner_cls: Any) -> None:
    original = runner_cls._sample

    def _sample(self: Any, scores: Any, output_ids: Any) -> None:
        greedy, _step.greedy = getattr(_step, "greedy", False), False
        if not (greedy and self.do_sample):
            original(self, scores, output_ids)
            return
        self.do_sample = False  # only this thread reads it, and only inside this call
        try:
            original(self, scores, output_ids)
        finally:
            self.do_sample = True

    runner_cls._sample = _sample
