"""An lm-eval model over a SageMaker endpoint: the suites run against a staging endpoint.

`llmops ci deploy` measures a hosted model where it will serve (the hub weights
behind a TGI or LMI container) before prod. Chat turns go to the container's
Messages API (`{"messages": [...]}` → OpenAI-style choices), which both container
families accept on `InvokeEndpoint`, so the endpoint's own chat template renders
them. Only generation is supported: log-likelihood suites need token scores the
endpoints do not return, and such a suite fails with a clear message.
"""

from __future__ import annotations

import json
from typing import Any

from lm_eval.api.model import LM

DEFAULT_MAX_TOKENS = 64


class SageMakerLM(LM):  # type: ignore[misc]
    def __init__(self, endpoint: str, client: Any, *, variant: str | None = None, max_tokens: int = DEFAULT_MAX_TOKENS):
        super().__init__()
        self.endpoint = endpoint
        self.client = client  # boto3 "sagemaker-runtime"
        self.variant = variant
        self.max_tokens = max_tokens

    @property
    def tokenizer_name(self) -> str:
        return f"sagemaker-endpoint:{self.endpoint}"

    def apply_chat_template(self, chat_history: list[dict[str, str]], add_generation_prompt: bool = True) -> str:
        # The prompt stays the messages themselves; the endpoint applies its own template.
        return json.dumps({"messages": chat_history})

    def _invoke(self, body: dict[str, Any]) -> Any:
        kwargs: dict[str, Any] = {
            "EndpointName": self.endpoint,
            "ContentType": "application/json",
            "Accept": "application/json",
            "Body": json.dumps(body).encode(),
        }
        if self.variant:
            kwargs["TargetVariant"] = self.variant
        response = self.client.invoke_endpoint(**kwargs)
        return json.loads(response["Body"].read())

    def generate_until(self, requests: list[Any], disable_tqdm: bool = False) -> list[str]:
        out = []
        for request in requests:
            context, gen_kwargs = request.args
            until = [u for u in (gen_kwargs.get("until") or []) if u]
            max_tokens = int(gen_kwargs.get("max_gen_toks", self.max_tokens))
            try:
                messages = json.loads(context)["messages"]
            except (ValueError, KeyError, TypeError):
                messages = [{"role": "user", "content": context}]
            body = {"messages": messages, "max_tokens": max_tokens, "temperature": 0}
            if until:
                body["stop"] = until[:4]
            answer = self._invoke(body)
            text = str(answer["choices"][0]["message"]["content"] or "")
            for stop in until:
                text = text.split(stop)[0]
            out.append(text)
        return out

    def loglikelihood(self, requests: list[Any], disable_tqdm: bool = False) -> list[tuple[float, bool]]:
        raise NotImplementedError(f"{self.tokenizer_name}: endpoints return no token scores; use generation suites")

    def loglikelihood_rolling(self, requests: list[Any], disable_tqdm: bool = False) -> list[float]:
        raise NotImplementedError(f"{self.tokenizer_name}: endpoints return no token scores; use generation suites")
