"""An LLM judge: a check that asks a model whether an answer meets a rubric.

The judge answers with a structured :class:`Verdict` (the agent's ``output_type``
machinery: JSON schema on OpenAI-compatible servers, a grammar on the offline model), so
its decision is a field, not a sentence to parse.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, Field

from agentkit.evals.checks import Check, CheckResult, Observation, output_text

if TYPE_CHECKING:
    from agentkit.agent import Agent
    from agentkit.models.base import Model

__all__ = ["Verdict", "judge"]

_INSTRUCTIONS = (
    "You grade an assistant's answer against a rubric. Read the rubric, the question "
    "and the answer; give a one-sentence reason, then passed (true if the answer meets "
    "the rubric) and a score from 0 to 1."
)


class Verdict(BaseModel):
    """What the judge decided about one answer."""

    reason: str = Field(description="One sentence: why the answer does or does not meet "
                                    "the rubric.")
    passed: bool = Field(description="True when the answer meets the rubric.")
    score: float = Field(description="How well the answer meets the rubric, 0 to 1.")


def judge(rubric: str, model: Model | str | None = None, *, name: str | None = None) -> Check:
    """A check graded by a model against ``rubric`` (e.g. ``"The answer gives the
    temperature in Celsius."``).

    Args:
        rubric: What a good answer does, in plain words.
        model: The judging model (a name or a :class:`~agentkit.models.Model`; ``"local"``
            is the offline model). ``None`` resolves like ``Agent(model=None)``.
        name: How reports name the check (default ``judge(<rubric>)``).
    """
    label = name or f"judge({rubric[:40]!r})"
    judges: list[Agent[Verdict]] = []

    async def run(o: Observation) -> CheckResult:
        if not judges:
            from agentkit.agent import Agent

            judges.append(Agent(name="judge", instructions=_INSTRUCTIONS, model=model,
                                output_type=Verdict, max_turns=2))
        prompt = [f"Rubric: {rubric}", f"Question: {_input_text(o.case.input)}"]
        if o.case.expected_output is not None:
            prompt.append(f"Reference answer: {output_text(o.case.expected_output)}")
        prompt.append(f"Answer to grade: {o.text}")
        verdict = (await judges[0].run("\n".join(prompt))).output
        score = min(1.0, max(0.0, float(verdict.score)))
        return CheckResult(label, bool(verdict.passed), score, verdict.reason.strip())

    spec: dict[str, Any] = {"rubric": rubric}
    if isinstance(model, str):
        spec["model"] = model
    return Check(label, run, {"judge": spec} if model is None or isinstance(model, str)
                 else None)


def _input_text(value: Any) -> str:
    if isinstance(value, str):
        return value
    parts = [m.get("content") if isinstance(m, dict) else getattr(m, "text", "") for m in value]
    return "\n".join(str(p) for p in parts if p)
