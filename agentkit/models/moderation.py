"""OpenAIModeration: classify text with ``POST /v1/moderations``.

Shares the connection, retries, rate limit, redaction and typed errors of the model
backends (``_openai_client.OpenAIEndpoint``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from typing_extensions import Unpack

from agentkit.errors import ConfigurationError, ModelHTTPError
from agentkit.models._openai_client import Connection, OpenAIEndpoint
from agentkit.models._openai_wire import MalformedResponse

if TYPE_CHECKING:
    import openai

__all__ = ["ModerationResult", "OpenAIModeration"]


@dataclass(frozen=True, slots=True)
class ModerationResult:
    """The verdict on one input.

    Attributes:
        flagged: Whether any category was flagged.
        categories: Category name (``"violence"``, ``"hate/threatening"``...) to whether it
            was flagged.
        scores: Category name to the model's confidence, from 0 to 1.
    """

    flagged: bool
    categories: dict[str, bool] = field(default_factory=dict)
    scores: dict[str, float] = field(default_factory=dict)

    @property
    def flagged_categories(self) -> list[str]:
        """The names of the flagged categories, highest score first."""
        names = [name for name, flagged in self.categories.items() if flagged]
        return sorted(names, key=lambda name: -self.scores.get(name, 0.0))


def _parse(data: Any) -> list[ModerationResult]:
    if not isinstance(data, dict) or not isinstance(data.get("results"), list):
        raise MalformedResponse(f"no results list in the moderation body: {str(data)[:200]}")
    results = []
    for raw in data["results"]:
        if not isinstance(raw, dict) or not isinstance(raw.get("categories", {}), dict):
            raise MalformedResponse(f"a moderation result is not an object: {str(raw)[:200]}")
        categories = {str(k): bool(v) for k, v in (raw.get("categories") or {}).items()}
        scores_raw = raw.get("category_scores") or {}
        scores = {
            str(k): float(v)
            for k, v in (scores_raw.items() if isinstance(scores_raw, dict) else ())
            if isinstance(v, (int, float))
        }
        flagged = raw.get("flagged")
        results.append(ModerationResult(
            bool(flagged) if flagged is not None else any(categories.values()),
            categories,
            scores,
        ))
    return results


class OpenAIModeration(OpenAIEndpoint):
    """OpenAI's moderation endpoint (or a compatible server's).

    ``await OpenAIModeration().moderate("text")`` returns one :class:`ModerationResult` per
    input. The connection arguments (``base_url``, ``api_key``, ``timeout``, ``retry``,
    ``rate_limit``...) are those of :class:`~agentkit.models.OpenAIChatModel`, with the
    same environment variables.

    Args:
        model: The moderation model, default ``"omni-moderation-latest"``.
    """

    _body_kind = "a moderation result"
    _offline_hint = "point base_url at a compatible server"

    def __init__(
        self,
        model: str = "omni-moderation-latest",
        **connection: Unpack[Connection],
    ) -> None:
        connection.setdefault("timeout", 60.0)  # one classification is quick
        super().__init__(model, **connection)

    async def moderate(self, text: str | Sequence[str]) -> list[ModerationResult]:
        """Classify ``text`` (one string or several): one result per input, in order."""
        inputs = [text] if isinstance(text, str) else list(text)
        if not all(isinstance(item, str) for item in inputs):
            raise ConfigurationError(
                "OpenAIModeration.moderate() takes a string or a list of strings; got "
                f"{[type(item).__name__ for item in inputs][:5]}"
            )
        if not inputs:
            return []
        self.require_key()
        body = {"model": self.name, "input": inputs}
        options: dict[str, Any] = {"input": (), "model": self.name, "extra_body": body}
        tokens = sum(len(item) for item in inputs) // 4 + 1
        results, _ = await self._call(
            _moderations, options, self.timeout, tokens, _parse, lambda _: None
        )
        if len(results) != len(inputs):
            raise self._count_mismatch(len(results), len(inputs))
        return results

    def _count_mismatch(self, got: int, sent: int) -> Exception:
        return ModelHTTPError(
            f"{self._where()} returned {got} moderation results for {sent} inputs (model "
            f"{self.name!r}); is base_url an OpenAI-compatible /v1 endpoint?",
            status=200,
        )


def _moderations(client: openai.AsyncOpenAI) -> Any:
    return client.moderations
