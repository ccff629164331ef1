"""A scripted LLM double shipped with the package, for tests about the pipeline's logic (never about a backend).

Queue replies; each `complete` call pops one reply per requested completion and records the request.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable
from typing import ClassVar

from sqlwright.llm.base import Completion, Message, raise_if_stopped


class ScriptedLLM:
    """Replies are strings or `Completion`s, handed out in order. Runs out -> AssertionError (a test bug)."""

    name = "scripted"
    supports_n: ClassVar[bool] = True
    supports_logprobs: ClassVar[bool] = True

    def __init__(self, replies: Iterable[str | Completion] = ()) -> None:
        self._replies: deque[str | Completion] = deque(replies)
        self.requests: list[dict] = []

    def queue(self, *replies: str | Completion) -> ScriptedLLM:
        self._replies.extend(replies)
        return self

    @property
    def remaining(self) -> int:
        return len(self._replies)

    def complete(
        self,
        messages: list[Message],
        *,
        n: int = 1,
        temperature: float = 0.0,
        max_tokens: int = 512,
        stop: list[str] | None = None,
        seed: int | None = None,
        should_stop: Callable[[], bool] | None = None,
    ) -> list[Completion]:
        self.requests.append(
            {"messages": messages, "n": n, "temperature": temperature, "max_tokens": max_tokens,
             "stop": stop, "seed": seed}
        )
        out = []
        for _ in range(n):
            raise_if_stopped(should_stop)  # before each reply, as a backend between tokens
            if not self._replies:
                raise AssertionError("ScriptedLLM ran out of replies")
            reply = self._replies.popleft()
            if isinstance(reply, str):
                prompt_tokens = sum(self.count_tokens(m["content"]) for m in messages)
                reply = Completion(reply, prompt_tokens, self.count_tokens(reply), -0.1, "stop", 0.0)
            out.append(reply)
        return out

    def count_tokens(self, text: str) -> int:
        return max(1, len(text) // 4)
