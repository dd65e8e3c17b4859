"""Eval datasets: cases, their files (YAML or JSONL), and running an agent over them."""

from __future__ import annotations

import importlib
import json
import os
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio

from agentkit._progress import Progress
from agentkit.errors import ConfigurationError, DatasetError
from agentkit.evals.checks import Check, CheckResult, Observation, equals, from_spec
from agentkit.evals.report import CaseResult, EvalReport

if TYPE_CHECKING:
    from agentkit.agent import Agent
    from agentkit.run import RunResult

__all__ = ["Case", "Dataset"]

_CASE_KEYS = ("name", "input", "expected_output", "metadata", "checks")


def _completed(o: Observation) -> CheckResult:
    if o.error is not None:
        return CheckResult("completed", False, 0.0,
                           f"the run failed: {type(o.error).__name__}: {o.error}")
    return CheckResult("completed", True, 1.0, "the run completed")


_COMPLETED = Check("completed", _completed, needs_output=False)


@dataclass(frozen=True)
class Case:
    """One eval case.

    Attributes:
        name: A unique name (reports and baselines compare cases by it).
        input: The user's message, or a list of messages (wire dicts).
        expected_output: The answer wanted; with no ``checks`` the output must equal it.
        metadata: Anything you want to keep with the case (tags, a source...).
        checks: :class:`Check` values, or their file form (``{"contains": "Paris"}``).
    """

    name: str
    input: str | list[dict[str, Any]]
    expected_output: Any = None
    metadata: dict[str, Any] | None = None
    checks: Sequence[Check | Mapping[str, Any]] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "checks", tuple(
            c if isinstance(c, Check) else from_spec(c) for c in self.checks
        ))

    def all_checks(self, shared: Sequence[Check] = ()) -> list[Check]:
        """The checks a run of this case must pass: its own and the dataset's; with none,
        equality with ``expected_output``, or else just that the run completed."""
        found: list[Check] = [*shared, *self.checks]  # type: ignore[list-item]
        if not found:
            found = [equals(self.expected_output) if self.expected_output is not None
                     else _COMPLETED]
        return found

    def to_json(self) -> dict[str, Any]:
        """The file form of the case; raises if a check was made from a function."""
        data: dict[str, Any] = {"name": self.name, "input": self.input}
        if self.expected_output is not None:
            data["expected_output"] = self.expected_output
        if self.metadata:
            data["metadata"] = self.metadata
        if self.checks:
            data["checks"] = [_spec(c, self.name) for c in self.checks]  # type: ignore[arg-type]
        return data

    @classmethod
    def from_json(cls, data: Any, where: str) -> Case:
        """Read a case from its file form; ``where`` names it in errors."""
        if not isinstance(data, Mapping):
            raise DatasetError(f"{where}: a case is a mapping with name and input; got "
                               f"{data!r:.120}")
        unknown = sorted(set(data) - set(_CASE_KEYS))
        if unknown:
            raise DatasetError(f"{where}: unknown key(s) {', '.join(unknown)}; a case has "
                               f"{', '.join(_CASE_KEYS)}")
        name, input_ = data.get("name"), data.get("input")
        if not isinstance(name, (str, int)) or input_ is None:
            raise DatasetError(f"{where}: a case needs a name and an input; got "
                               f"{dict(data)!r:.120}")
        if not isinstance(input_, (str, list)):
            raise DatasetError(f"{where} ({name}): input must be a string or a list of "
                               f"messages; got {type(input_).__name__}")
        checks = data.get("checks") or []
        if not isinstance(checks, list):
            raise DatasetError(f"{where} ({name}): checks must be a list like "
                               f"[{{contains: Paris}}]; got {checks!r:.120}")
        try:
            return cls(str(name), input_, data.get("expected_output"), data.get("metadata"),
                       checks)
        except ConfigurationError as exc:
            raise DatasetError(f"{where} ({name}): {exc}") from None


def _spec(check: Check, case: str) -> dict[str, Any]:
    if check.spec is None:
        raise DatasetError(f"case {case!r}: check {check.name} was made from a function and "
                           "cannot be written to a file; keep such checks in code")
    return check.spec


class Dataset:
    """A list of :class:`Case` values, with checks every case shares.

    Args:
        cases: The cases; names must be unique.
        name: A name for reports (default: the file's stem when loaded).
        checks: Checks applied to every case, before its own.
    """

    def __init__(self, cases: Iterable[Case], *, name: str = "dataset",
                 checks: Sequence[Check | Mapping[str, Any]] = ()) -> None:
        self.cases = list(cases)
        self.name = name
        self.checks = [c if isinstance(c, Check) else from_spec(c) for c in checks]
        seen: set[str] = set()
        for case in self.cases:
            if case.name in seen:
                raise DatasetError(f"dataset {name!r} has two cases named {case.name!r}; "
                                   "names must be unique (baselines compare by name)")
            seen.add(case.name)

    def __repr__(self) -> str:
        return f"Dataset(name={self.name!r}, cases={len(self.cases)})"

    def __len__(self) -> int:
        return len(self.cases)

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> Dataset:
        """Read a dataset from YAML (``cases: [...]``, optional shared ``checks:``) or
        JSONL (one case a line)."""
        path = Path(path)
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise DatasetError(f"cannot read dataset {path}: {exc.strerror or exc}") from None
        if path.suffix == ".jsonl":
            cases = []
            for number, line in enumerate(text.splitlines(), 1):
                if not line.strip():
                    continue
                try:
                    raw = json.loads(line)
                except ValueError as exc:
                    raise DatasetError(f"{path}:{number}: not JSON: {exc}") from None
                cases.append(Case.from_json(raw, f"{path}:{number}"))
            return cls(cases, name=path.stem)
        document = _parse_yaml(text, path) if path.suffix in (".yaml", ".yml") else None
        if document is None:
            try:
                document = json.loads(text)
            except ValueError as exc:
                raise DatasetError(f"{path}: not JSON ({exc}); use .yaml, .yml or .jsonl") \
                    from None
        if not isinstance(document, Mapping) or not isinstance(document.get("cases"), list):
            raise DatasetError(f"{path}: expected a mapping with a 'cases' list, e.g. "
                               "cases: [{name: paris, input: Weather in Paris?}]")
        cases = [Case.from_json(raw, f"{path}: cases[{i}]")
                 for i, raw in enumerate(document["cases"])]
        try:
            return cls(cases, name=str(document.get("name") or path.stem),
                       checks=document.get("checks") or ())
        except ConfigurationError as exc:
            raise DatasetError(f"{path}: {exc}") from None

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write the dataset as YAML (``.yaml``/``.yml``) or JSONL (``.jsonl``)."""
        path = Path(path)
        cases = [case.to_json() for case in self.cases]
        if path.suffix == ".jsonl":
            if self.checks:
                raise DatasetError("shared dataset checks cannot be written to JSONL (one "
                                   "case a line); save as YAML or move them into the cases")
            path.write_text("".join(json.dumps(c, ensure_ascii=False) + "\n" for c in cases),
                            encoding="utf-8")
            return
        document: dict[str, Any] = {"name": self.name}
        if self.checks:
            document["checks"] = [_spec(c, "(shared)") for c in self.checks]
        document["cases"] = cases
        yaml = _yaml()
        path.write_text(yaml.safe_dump(document, sort_keys=False, allow_unicode=True),
                        encoding="utf-8")

    async def run(self, agent: Agent[Any], *, concurrency: int = 4, repeat: int = 1,
                  progress: bool | None = None) -> EvalReport:
        """Run ``agent`` on every case ``repeat`` times, at most ``concurrency`` at once,
        check every run and return the :class:`EvalReport`. A failing run is a failed case,
        not an exception. A progress bar is drawn on stderr when it is a terminal
        (``progress=False`` turns it off)."""
        if concurrency < 1 or repeat < 1:
            raise ConfigurationError(f"concurrency and repeat must be at least 1; got "
                                     f"{concurrency} and {repeat}")
        jobs = [(case, r) for r in range(repeat) for case in self.cases]
        results: list[CaseResult | None] = [None] * len(jobs)
        limiter = anyio.CapacityLimiter(concurrency)
        bar = Progress(f"eval {self.name}", len(jobs), unit="runs")
        if progress is False:
            bar.enabled = False

        async def one(index: int, case: Case, repeat_index: int) -> None:
            async with limiter:
                results[index] = await self._run_case(agent, case, repeat_index)
            bar.advance(1)

        started = time.time()
        with bar:
            async with anyio.create_task_group() as group:
                for index, (case, r) in enumerate(jobs):
                    group.start_soon(one, index, case, r)
        model = getattr(agent.model, "name", None)
        return EvalReport(
            [r for r in results if r is not None], dataset=self.name, agent=agent.name,
            model=model, tools=[t.to_openai() for t in agent.tools], created_at=started,
        )

    async def _run_case(self, agent: Agent[Any], case: Case, repeat_index: int) -> CaseResult:
        result: RunResult[Any] | None = None
        error: BaseException | None = None
        started = time.perf_counter()
        try:
            result = await agent.run(case.input)
        except Exception as exc:
            error = exc
        elapsed = time.perf_counter() - started
        output = result.output if result is not None else None
        observation = Observation(case, output, result, error, elapsed)
        verdicts = [await c.evaluate(observation) for c in case.all_checks(self.checks)]
        return CaseResult.of(case, repeat_index, observation, verdicts)


def _yaml() -> Any:
    try:
        # Loaded by name: typed or not, it is used dynamically here.
        yaml = importlib.import_module("yaml")
    except ImportError:
        raise ConfigurationError(
            "YAML datasets need PyYAML: pip install 'agentkit[evals]' (or use .jsonl)"
        ) from None
    return yaml


def _parse_yaml(text: str, path: Path) -> Any:
    yaml = _yaml()
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise DatasetError(f"{path}: not valid YAML: {exc}") from None

