"""The LLM protocol: one method, `complete`, and the plain data it returns."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import ClassVar, Protocol, runtime_checkable

from sqlwright.errors import Cancelled

Message = dict[str, str]  # {"role": "system"|"user"|"assistant", "content": "..."}


@dataclass(frozen=True)
class Completion:
    text: str
    prompt_tokens: int = 0
    completion_tokens: int = 0
    mean_logprob: float | None = None  # mean token log-probability, when the backend reports it
    finish_reason: str | None = None
    seconds: float = 0.0


@runtime_checkable
class LLM(Protocol):
    """A chat model. Backends declare capabilities as class attributes."""

    name: str
    supports_n: ClassVar[bool]  # n samples share one prompt prefill / one request
    supports_logprobs: ClassVar[bool]

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
        """Return `n` completions of the chat `messages`. `should_stop` is polled while the work goes on
        (before each request, between decoded tokens); when it returns True, `Cancelled` is raised."""
        ...

    def count_tokens(self, text: str) -> int:
        """Tokens `text` takes in this model's tokenizer (an estimate where none is available)."""
        ...


def raise_if_stopped(should_stop: Callable[[], bool] | None) -> None:
    """Raise `Cancelled` when `should_stop` (if any) says the work is no longer wanted."""
    if should_stop is not None and should_stop():
        raise Cancelled("cancelled: the answer is no longer wanted")
