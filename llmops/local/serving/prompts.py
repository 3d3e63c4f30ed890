"""Prompt token ids of a validated request, with the artifact's own tokenizer and chat template.

The front counts with it (a request that cannot fit the context is refused before
any replica sees it) and the replica generates from the same ids, so both agree
on what "too long" means.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from llmops.local.serving.validation import ChatRequest, Generation, RequestError


class Prompter:
    """Token ids of each prompt of a request (one for chat, one per prompt for completions)."""

    def __init__(self, tokenizer: Any):
        self.tokenizer = tokenizer

    @classmethod
    def load(cls, model_dir: str) -> Prompter:
        return _load(model_dir)

    def encode(self, request: Generation) -> list[list[int]]:
        if isinstance(request, ChatRequest):
            messages = [{"role": m.role, "content": m.text()} for m in request.messages]
            try:
                ids = self.tokenizer.apply_chat_template(
                    messages, add_generation_prompt=True, tokenize=True, return_dict=True
                )
            except Exception as exc:  # the template's own checks (role order, ...) raise what they like
                raise RequestError(
                    400, f"the model's chat template refuses these messages: {exc}", "messages"
                ) from None
            return [list(ids["input_ids"])]
        out: list[list[int]] = []
        for p in request.prompts():
            if isinstance(p, str):
                out.append(list(self.tokenizer(p, add_special_tokens=True)["input_ids"]))
                continue
            vocabulary = len(self.tokenizer)
            outside = next((t for t in p if not 0 <= t < vocabulary), None)
            if outside is not None:
                raise RequestError(400, f"prompt token id {outside} is outside the vocabulary (0..{vocabulary - 1})",
                                   "prompt")  # fmt: skip
            out.append(list(p))
        return out

    def text(self, prompt: str | list[int]) -> str:
        """A prompt as text: itself, or its token ids decoded (what `echo` returns)."""
        return prompt if isinstance(prompt, str) else str(self.tokenizer.decode(prompt))

    def count(self, request: Generation) -> list[int]:
        return [len(ids) for ids in self.encode(request)]


@lru_cache(maxsize=8)
def _load(model_dir: str) -> Prompter:
    from transformers import AutoTokenizer

    return Prompter(AutoTokenizer.from_pretrained(model_dir))
