"""Evals: run an agent over a dataset of cases, check every run, report and compare.

::

    from agentkit.evals import Dataset, Case, checks, judge

    dataset = Dataset.load("evals/support.yaml")        # or Dataset([Case(...), ...])
    report = await dataset.run(agent, concurrency=4, repeat=3)
    report.pass_rate; report.print(); report.save("report.json")
    report.compare(EvalReport.load("baseline.json"))    # regressions and improvements

``agentkit eval dataset.yaml --agent app:agent --min-pass-rate 0.9`` does the same from
the command line and exits 1 below the bar.
"""

from __future__ import annotations

from agentkit.evals import checks
from agentkit.evals.checks import Check, CheckResult, Observation, check
from agentkit.evals.dataset import Case, Dataset
from agentkit.evals.judge import Verdict, judge
from agentkit.evals.report import CaseResult, CaseSummary, Comparison, EvalReport

__all__ = [
    "Case",
    "CaseResult",
    "CaseSummary",
    "Check",
    "CheckResult",
    "Comparison",
    "Dataset",
    "EvalReport",
    "Observation",
    "Verdict",
    "check",
    "checks",
    "judge",
]
