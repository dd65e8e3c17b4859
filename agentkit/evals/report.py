"""Eval reports: per-run results, summaries, baseline comparison, terminal/JSON/HTML output.

Every run is kept whole (messages as chat-completions dicts, usage, check verdicts), so a
saved report is also the record :func:`agentkit.finetune.export_jsonl` exports from.
"""

from __future__ import annotations

import html
import json
import math
import os
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from agentkit.errors import ConfigurationError
from agentkit.evals.checks import CheckResult

if TYPE_CHECKING:
    from agentkit.evals.checks import Observation
    from agentkit.evals.dataset import Case

__all__ = ["CaseResult", "CaseSummary", "Comparison", "EvalReport"]

_REPORT_VERSION = 1


@dataclass(slots=True)
class CaseResult:
    """One run of one case, as recorded.

    Attributes:
        name: The case's name.
        repeat: Which repetition (0-based) this run was.
        input: The case's input.
        expected_output: The case's expected output.
        output: The output, JSON-serialisable (None when the run failed).
        passed: Whether every check passed.
        score: The mean of the checks' scores.
        checks: Every check's verdict.
        error: ``"ErrorType: message"`` when the run raised.
        latency: Seconds the run took.
        turns: Model requests made.
        input_tokens, output_tokens: Tokens spent.
        cost_usd: The run's cost, None when unknown (no price for the model).
        messages: The conversation as chat-completions dicts (for fine-tuning export).
        metadata: The case's metadata.
    """

    name: str
    repeat: int
    input: Any
    expected_output: Any
    output: Any
    passed: bool
    score: float
    checks: list[CheckResult]
    error: str | None
    latency: float
    turns: int
    input_tokens: int
    output_tokens: int
    cost_usd: float | None
    messages: list[dict[str, Any]] = field(default_factory=list)
    metadata: dict[str, Any] | None = None

    @classmethod
    def of(cls, case: Case, repeat: int, o: Observation, verdicts: list[CheckResult]
           ) -> CaseResult:
        """Record one run from its observation and check verdicts."""
        from pydantic_core import to_jsonable_python

        result = o.result
        usage = result.usage if result is not None else getattr(o.error, "usage", None)
        messages = result.messages if result is not None else getattr(o.error, "messages", None)
        score = sum(v.score for v in verdicts) / len(verdicts) if verdicts else 1.0
        return cls(
            name=case.name, repeat=repeat, input=case.input,
            expected_output=_plain(case.expected_output, to_jsonable_python),
            output=_plain(o.output, to_jsonable_python), passed=all(v.passed for v in verdicts),
            score=score, checks=verdicts,
            error=None if o.error is None else f"{type(o.error).__name__}: {o.error}",
            latency=o.latency, turns=result.turns if result is not None else 0,
            input_tokens=usage.input_tokens if usage is not None else 0,
            output_tokens=usage.output_tokens if usage is not None else 0,
            # Usage.cost_usd exists once prices are known (agentkit.pricing).
            cost_usd=getattr(usage, "cost_usd", None),
            messages=[m.to_openai() for m in messages or ()],
            metadata=case.metadata,
        )

    def to_json(self) -> dict[str, Any]:
        """A JSON-serialisable dict (the form in a saved report)."""
        data = {name: getattr(self, name) for name in self.__slots__}
        data["checks"] = [c.to_json() for c in self.checks]
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> CaseResult:
        """Read one result back from :meth:`to_json`'s form."""
        values = dict(data)
        values["checks"] = [CheckResult(**c) for c in values.get("checks", [])]
        return cls(**values)


@dataclass(frozen=True, slots=True)
class CaseSummary:
    """All runs of one case: ``runs``, how many ``passed``, ``pass_rate``, mean ``score``,
    and the first failing reason (``failure``, empty when every run passed)."""

    name: str
    runs: int
    passed: int
    pass_rate: float
    score: float
    latency: float
    failure: str


@dataclass(frozen=True, slots=True)
class Comparison:
    """A report compared with a baseline.

    Attributes:
        pass_rate: The new report's pass rate.
        baseline_pass_rate: The baseline's.
        regressions: ``(case, baseline pass rate, new pass rate)`` where the case got worse.
        improvements: The same, where it got better.
        added: Cases only in the new report.
        removed: Cases only in the baseline.
    """

    pass_rate: float
    baseline_pass_rate: float
    regressions: list[tuple[str, float, float]]
    improvements: list[tuple[str, float, float]]
    added: list[str]
    removed: list[str]

    def __str__(self) -> str:
        lines = [f"pass rate {self.baseline_pass_rate:.1%} -> {self.pass_rate:.1%} "
                 f"({len(self.regressions)} regression(s), {len(self.improvements)} "
                 "improvement(s))"]
        lines += [f"  regressed: {n} {a:.0%} -> {b:.0%}" for n, a, b in self.regressions]
        lines += [f"  improved:  {n} {a:.0%} -> {b:.0%}" for n, a, b in self.improvements]
        lines += [f"  new case:  {n}" for n in self.added]
        lines += [f"  gone:      {n}" for n in self.removed]
        return "\n".join(lines)


def percentile(values: Sequence[float], share: float) -> float:
    """The nearest-rank percentile (``share`` in [0, 1]); 0 for no values."""
    if not values:
        return 0.0
    ordered = sorted(values)
    rank = max(1, math.ceil(share * len(ordered)))
    return ordered[min(rank, len(ordered)) - 1]


class EvalReport:
    """The outcome of :meth:`Dataset.run`: every run, and what they add up to.

    Attributes:
        results: One :class:`CaseResult` per run (case × repeat), in dataset order.
        dataset, agent, model: What was evaluated.
        tools: The agent's tools as chat-completions definitions (for export).
        created_at: When the eval started (Unix time).
    """

    def __init__(self, results: Sequence[CaseResult], *, dataset: str = "dataset",
                 agent: str = "agent", model: str | None = None,
                 tools: Sequence[dict[str, Any]] = (), created_at: float | None = None) -> None:
        self.results = list(results)
        self.dataset = dataset
        self.agent = agent
        self.model = model
        self.tools = list(tools)
        self.created_at = time.time() if created_at is None else created_at

    def __repr__(self) -> str:
        return (f"EvalReport(dataset={self.dataset!r}, runs={len(self.results)}, "
                f"pass_rate={self.pass_rate:.3f})")

    # --- figures ------------------------------------------------------------------------

    @property
    def pass_rate(self) -> float:
        """The share of runs that passed every check (0 for an empty report)."""
        return sum(r.passed for r in self.results) / len(self.results) if self.results else 0.0

    @property
    def score(self) -> float:
        """The mean score over all runs."""
        return sum(r.score for r in self.results) / len(self.results) if self.results else 0.0

    def latency(self, share: float = 0.5) -> float:
        """A latency percentile in seconds: ``latency(0.5)`` is the median, ``0.9``, ``0.99``."""
        return percentile([r.latency for r in self.results], share)

    @property
    def input_tokens(self) -> int:
        """Input tokens over all runs."""
        return sum(r.input_tokens for r in self.results)

    @property
    def output_tokens(self) -> int:
        """Output tokens over all runs."""
        return sum(r.output_tokens for r in self.results)

    @property
    def cost_usd(self) -> float | None:
        """The total cost, or None when any run's cost is unknown."""
        costs = [r.cost_usd for r in self.results]
        return None if any(c is None for c in costs) else sum(c or 0.0 for c in costs)

    def cases(self) -> list[CaseSummary]:
        """One summary per case (its runs over all repeats), in dataset order."""
        grouped: dict[str, list[CaseResult]] = {}
        for r in self.results:
            grouped.setdefault(r.name, []).append(r)
        summaries = []
        for name, runs in grouped.items():
            passed = sum(r.passed for r in runs)
            failure = next((f"{c.name}: {c.reason}" for r in runs for c in r.checks
                            if not c.passed), "")
            summaries.append(CaseSummary(
                name, len(runs), passed, passed / len(runs),
                sum(r.score for r in runs) / len(runs),
                percentile([r.latency for r in runs], 0.5), failure,
            ))
        return summaries

    def runs(self, only: Callable[[CaseResult], bool] | None = None) -> list[CaseResult]:
        """The recorded runs, optionally only those ``only(result)`` keeps (e.g.
        ``lambda r: r.passed``): what :func:`agentkit.finetune.export_jsonl` takes."""
        return [r for r in self.results if only is None or only(r)]

    def compare(self, baseline: EvalReport) -> Comparison:
        """Compare with an earlier report, case by case (by name)."""
        now = {c.name: c.pass_rate for c in self.cases()}
        before = {c.name: c.pass_rate for c in baseline.cases()}
        common = [n for n in now if n in before]
        return Comparison(
            self.pass_rate, baseline.pass_rate,
            [(n, before[n], now[n]) for n in common if now[n] < before[n]],
            [(n, before[n], now[n]) for n in common if now[n] > before[n]],
            [n for n in now if n not in before], [n for n in before if n not in now],
        )

    # --- output -------------------------------------------------------------------------

    def print(self, file: TextIO | None = None, *, baseline: EvalReport | None = None) -> None:
        """Print a table of the cases and the totals (and the comparison with
        ``baseline``) to ``file`` (default stdout)."""
        out = file if file is not None else sys.stdout
        out.write(self.table(baseline=baseline) + "\n")

    def table(self, *, baseline: EvalReport | None = None) -> str:
        """The text :meth:`print` prints."""
        rows = [("case", "pass", "score", "latency", "note")]
        for c in self.cases():
            rows.append((c.name, f"{c.passed}/{c.runs}", f"{c.score:.2f}", f"{c.latency:.2f}s",
                         _clip(c.failure, 90)))
        widths = [max(len(row[i]) for row in rows) for i in range(4)]
        lines = []
        for i, row in enumerate(rows):
            cells = [row[0].ljust(widths[0])] + [row[j].rjust(widths[j]) for j in (1, 2, 3)]
            lines.append("  ".join([*cells, row[4]]).rstrip())
            if i == 0:
                lines.append("  ".join("-" * w for w in widths))
        cost = self.cost_usd
        lines.append("")
        lines.append(
            f"{self.dataset}: {sum(r.passed for r in self.results)}/{len(self.results)} runs "
            f"passed ({self.pass_rate:.1%}), score {self.score:.2f}"
        )
        lines.append(
            f"latency p50 {self.latency(0.5):.2f}s p90 {self.latency(0.9):.2f}s "
            f"p99 {self.latency(0.99):.2f}s; tokens {self.input_tokens} in / "
            f"{self.output_tokens} out; cost {'unknown' if cost is None else f'${cost:.4f}'}"
        )
        if baseline is not None:
            lines.append(str(self.compare(baseline)))
        return "\n".join(lines)

    def to_json(self) -> dict[str, Any]:
        """The whole report as a JSON-serialisable dict."""
        return {
            "version": _REPORT_VERSION, "dataset": self.dataset, "agent": self.agent,
            "model": self.model, "created_at": self.created_at, "tools": self.tools,
            "summary": {"runs": len(self.results), "pass_rate": self.pass_rate,
                        "score": self.score, "latency_p50": self.latency(0.5),
                        "latency_p90": self.latency(0.9), "latency_p99": self.latency(0.99),
                        "input_tokens": self.input_tokens, "output_tokens": self.output_tokens,
                        "cost_usd": self.cost_usd},
            "results": [r.to_json() for r in self.results],
        }

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write the report: HTML with a chart when ``path`` ends in ``.html``, else JSON
        (which :meth:`load` reads back, e.g. as a baseline)."""
        path = Path(path)
        if path.suffix in (".html", ".htm"):
            path.write_text(self.to_html(), encoding="utf-8")
        else:
            path.write_text(json.dumps(self.to_json(), ensure_ascii=False, indent=1) + "\n",
                            encoding="utf-8")

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> EvalReport:
        """Read a report written by :meth:`save` (JSON)."""
        try:
            data = json.loads(Path(path).read_text(encoding="utf-8"))
            results = [CaseResult.from_json(r) for r in data["results"]]
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise ConfigurationError(
                f"{path} is not a saved eval report ({type(exc).__name__}: {exc}); write one "
                "with report.save('report.json') or agentkit eval --output"
            ) from None
        return cls(results, dataset=data.get("dataset", "dataset"),
                   agent=data.get("agent", "agent"), model=data.get("model"),
                   tools=data.get("tools", ()), created_at=data.get("created_at"))

    def to_html(self) -> str:
        """A standalone HTML page: totals, a bar chart of each case's pass rate and
        latency, and the table of runs (no external assets)."""
        e = html.escape
        cases = self.cases()
        rows = "".join(
            f"<tr class={'ok' if r.passed else 'bad'}><td>{e(r.name)}</td><td>{r.repeat}</td>"
            f"<td>{'pass' if r.passed else 'FAIL'}</td><td>{r.score:.2f}</td>"
            f"<td>{r.latency:.2f}s</td><td>{r.input_tokens}/{r.output_tokens}</td>"
            f"<td>{e(_clip(json.dumps(r.output, ensure_ascii=False), 120))}</td>"
            f"<td>{e('; '.join(f'{c.name}: {c.reason}' for c in r.checks if not c.passed))}"
            f"{e(r.error or '')}</td></tr>"
            for r in self.results
        )
        cost = self.cost_usd
        return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Eval {e(self.dataset)}</title>
<style>body{{font:14px system-ui,sans-serif;margin:2em}}table{{border-collapse:collapse}}
td,th{{border:1px solid #ccc;padding:4px 8px;text-align:left}}tr.bad td{{background:#fde8e8}}
</style></head><body>
<h1>Eval: {e(self.dataset)}</h1>
<p>Agent <b>{e(self.agent)}</b>, model <b>{e(str(self.model))}</b>.
{sum(r.passed for r in self.results)}/{len(self.results)} runs passed
(<b>{self.pass_rate:.1%}</b>), mean score {self.score:.2f}; latency p50
{self.latency(0.5):.2f}s, p90 {self.latency(0.9):.2f}s, p99 {self.latency(0.99):.2f}s;
tokens {self.input_tokens} in / {self.output_tokens} out; cost
{'unknown' if cost is None else f'${cost:.4f}'}.</p>
{_chart(cases)}
<table><tr><th>case</th><th>repeat</th><th>result</th><th>score</th><th>latency</th>
<th>tokens in/out</th><th>output</th><th>failures</th></tr>{rows}</table>
</body></html>
"""


def _chart(cases: Sequence[CaseSummary]) -> str:
    """An inline SVG: one bar per case, its length the pass rate, coloured by it."""
    bar, gap, left, width = 18, 6, 160, 360
    height = len(cases) * (bar + gap) + 30
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{left + width + 140}" '
             f'height="{height}" role="img" aria-label="pass rate per case">']
    for i, c in enumerate(cases):
        y = 20 + i * (bar + gap)
        colour = "#2e7d32" if c.pass_rate == 1 else "#f9a825" if c.pass_rate > 0 else "#c62828"
        parts.append(
            f'<text x="{left - 6}" y="{y + 13}" text-anchor="end" font-size="12">'
            f"{html.escape(_clip(c.name, 24))}</text>"
            f'<rect x="{left}" y="{y}" width="{max(2, c.pass_rate * width):.1f}" '
            f'height="{bar}" fill="{colour}"/>'
            f'<text x="{left + width + 6}" y="{y + 13}" font-size="12">'
            f"{c.pass_rate:.0%} · {c.latency:.2f}s</text>"
        )
    parts.append(f'<text x="{left}" y="12" font-size="12">pass rate per case (median '
                 "latency)</text></svg>")
    return "".join(parts)


def _plain(value: Any, convert: Callable[[Any], Any]) -> Any:
    # Most outputs are text: no need for pydantic's walk over them.
    return value if value is None or isinstance(value, str) else convert(value)


def _clip(text: str, limit: int) -> str:
    text = text.replace("\n", " ")
    return text if len(text) <= limit else text[: limit - 3] + "..."
