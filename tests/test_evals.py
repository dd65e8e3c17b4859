"""Evals: datasets and their files, checks, the judge, running, reports and baselines."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import anyio
import pytest
from pydantic import BaseModel

from agentkit import Agent, DatasetError, tool
from agentkit.evals import Case, Dataset, EvalReport, Observation, check, checks, judge
from agentkit.models import ModelRequest
from agentkit.testing import FunctionModel, ScriptedModel
from agentkit.testing.models import text_response, tool_call_response


@tool
def get_weather(city: str) -> str:
    """Get the weather for a city."""
    return f"14°C in {city}"


def weather_model(request: ModelRequest) -> Any:
    """Calls get_weather for the city named last in the prompt, then answers from it."""
    last = request.messages[-1]
    if last.role == "tool":
        return f"It is {last.text}."
    if last.text.startswith("crash"):
        raise RuntimeError("the model fell over")
    return tool_call_response(("get_weather", {"city": last.text.split()[-1].rstrip("?")}))


def weather_agent() -> Agent[str]:
    return Agent(name="weather", model=FunctionModel(weather_model), tools=[get_weather])


DATASET_YAML = """\
name: weather
checks:
  - max_turns: 3
cases:
  - name: paris
    input: Weather in Paris?
    expected_output: It is 14°C in Paris.
    metadata: {tags: [europe]}
    checks:
      - contains: 14°C
      - tool_called: {name: get_weather, args: {city: Paris}}
      - regex: "\\\\d+°C"
  - name: rome
    input: Weather in Rome?
    expected_output: It is 14°C in Rome.
  - name: wrong-city
    input: Weather in Oslo?
    checks:
      - tool_called: {name: get_weather, args: {city: Bergen}}
"""


def load_yaml(tmp_path: Path) -> Dataset:
    path = tmp_path / "weather.yaml"
    path.write_text(DATASET_YAML, encoding="utf-8")
    return Dataset.load(path)


def test_yaml_dataset_runs_and_reports_per_case_and_overall(tmp_path: Path) -> None:
    dataset = load_yaml(tmp_path)
    report = anyio.run(lambda: dataset.run(weather_agent(), concurrency=2, repeat=2))
    assert len(report.results) == 6
    summary = {c.name: (c.passed, c.runs) for c in report.cases()}
    assert summary == {"paris": (2, 2), "rome": (2, 2), "wrong-city": (0, 2)}
    assert report.pass_rate == pytest.approx(4 / 6)
    failure = next(c for c in report.cases() if c.name == "wrong-city").failure
    assert "called, but with" in failure and "Oslo" in failure
    paris = report.results[0]
    assert [c.name for c in paris.checks][:2] == ["max_turns(3)", "contains('14°C')"]
    assert paris.messages[-1] == {"role": "assistant", "content": "It is 14°C in Paris."}
    assert paris.metadata == {"tags": ["europe"]}
    assert report.input_tokens == 0 and report.cost_usd is None  # FunctionModel: no usage
    assert report.tools[0]["function"]["name"] == "get_weather"


def test_dataset_files_round_trip_in_yaml_and_jsonl(tmp_path: Path) -> None:
    dataset = load_yaml(tmp_path)
    dataset.save(tmp_path / "copy.yaml")
    again = Dataset.load(tmp_path / "copy.yaml")
    assert [c.to_json() for c in again.cases] == [c.to_json() for c in dataset.cases]
    assert [c.spec for c in again.checks] == [{"max_turns": 3}]
    lines = Dataset([Case("a", "hi", "hello", checks=[{"contains": "hel"}]),
                     Case("b", [{"role": "user", "content": "yo"}])], name="x")
    lines.save(tmp_path / "x.jsonl")
    assert json.loads((tmp_path / "x.jsonl").read_text().splitlines()[0]) == {
        "name": "a", "input": "hi", "expected_output": "hello", "checks": [{"contains": "hel"}]}
    assert [c.name for c in Dataset.load(tmp_path / "x.jsonl").cases] == ["a", "b"]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("cases: [{name: a}]", "cases[0]: a case needs a name and an input"),
        ("cases: [{name: a, input: hi, checks: [{smells: ok}]}]", "(a): unknown check"),
        ("cases: [{name: a, input: hi, expect: 1}]", "unknown key(s) expect"),
        ("cases: [{name: a, input: hi}, {name: a, input: yo}]", "two cases named 'a'"),
        ("name: [unclosed", "not valid YAML"),
        ("- just a list", "expected a mapping with a 'cases' list"),
    ],
)
def test_bad_dataset_files_say_where_and_what(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(DatasetError) as error:
        Dataset.load(path)
    assert message in str(error.value) and str(path) in str(error.value)


def test_function_checks_cannot_be_saved_to_a_file(tmp_path: Path) -> None:
    dataset = Dataset([Case("a", "hi", checks=[check(lambda o: True, name="mine")])])
    with pytest.raises(DatasetError, match="case 'a': check mine was made from a function"):
        dataset.save(tmp_path / "d.yaml")


def observe(output: Any, *, error: BaseException | None = None, latency: float = 0.1,
            case: Case | None = None) -> Observation:
    return Observation(case or Case("c", "q"), output, None, error, latency)


async def verdicts(output: Any, *made: Any) -> list[tuple[bool, str]]:
    results = [await c.evaluate(observe(output)) for c in made]
    return [(r.passed, r.reason) for r in results]


class City(BaseModel):
    name: str
    population: int


def test_output_checks_pass_and_fail_with_reasons() -> None:
    async def main() -> None:
        ok = await verdicts(" Paris ", checks.equals("Paris"), checks.contains("PAR"),
                            checks.regex(r"^\s*P"))
        assert [p for p, _ in ok] == [True, True, True]
        bad = await verdicts("Lyon", checks.equals("Paris"),
                             checks.contains("Lyon", case_sensitive=False),
                             checks.contains("lyon", case_sensitive=True), checks.regex("^P"))
        assert bad == [(False, "got 'Lyon'"), (True, "found"), (False, "not in 'Lyon'"),
                       (False, "no match in 'Lyon'")]
        schema = {"type": "object", "required": ["population"],
                  "properties": {"population": {"type": "integer", "minimum": 0}}}
        city = City(name="Oslo", population=-1)
        assert await verdicts(city, checks.json_schema(schema)) == [
            (False, "population: -1 is less than the minimum of 0")]
        assert await verdicts('{"population": 3}', checks.json_schema(schema)) == [
            (True, "valid")]
        assert (await verdicts("not json", checks.json_schema(schema)))[0][0] is False
        assert await verdicts({"name": "Oslo", "population": 7}, checks.output_type(City)) == [
            (True, "valid")]
        assert (await verdicts('{"name": "Oslo"}', checks.output_type(City)))[0][0] is False
        assert await verdicts(city, checks.equals({"name": "Oslo", "population": -1})) == [
            (True, "the output is as expected")]
        assert (await verdicts("42", checks.equals(42)))[0][0] is True

    anyio.run(main)


def test_run_checks_use_tool_calls_turns_cost_latency_and_errors() -> None:
    async def main() -> None:
        result = await weather_agent().run("Weather in Paris?")
        o = Observation(Case("c", "q"), result.output, result, None, 2.5)
        evaluated = [await c.evaluate(o) for c in (
            checks.tool_called("get_weather"), checks.tool_called("get_weather", {"city": "Paris"}),
            checks.tool_called("send_email"), checks.max_turns(1), checks.max_turns(2),
            checks.latency(1), checks.max_cost_usd(1.0))]
        assert [r.passed for r in evaluated] == [True, True, False, False, True, False, False]
        assert evaluated[2].reason == "send_email was not called (called: get_weather)"
        assert evaluated[3].reason == "2 turn(s)"
        # The cost of a FunctionModel run is unknown: the check fails rather than passing.
        assert "cost is unknown" in evaluated[6].reason
        failed = observe(None, error=RuntimeError("boom"))
        assert (await checks.contains("x").evaluate(failed)).reason == (
            "the run failed: RuntimeError: boom")
        raising = check(lambda o: 1 / 0, name="divide")
        assert "ZeroDivisionError" in (await raising.evaluate(observe("x"))).reason

    anyio.run(main)


def test_max_cost_usd_reads_the_runs_cost_when_it_is_priced() -> None:
    class PricedUsage:
        cost_usd = 0.02

    class PricedResult:
        usage = PricedUsage()

    async def main() -> None:
        o = Observation(Case("c", "q"), "x", PricedResult(), None, 0.1)  # type: ignore[arg-type]
        assert (await checks.max_cost_usd(0.05).evaluate(o)).passed
        assert not (await checks.max_cost_usd(0.01).evaluate(o)).passed

    anyio.run(main)


def test_a_failing_run_is_a_failed_case_not_an_exception() -> None:
    dataset = Dataset([Case("ok", "Weather in Rome?"), Case("bad", "crash now")])
    report = anyio.run(lambda: dataset.run(weather_agent()))
    bad = report.results[1]
    assert (bad.passed, bad.output) == (False, None)
    assert bad.error is not None and "the model fell over" in bad.error
    assert report.results[0].passed  # no checks, no expected output: completing is passing


def test_judge_sends_the_rubric_and_reads_a_structured_verdict() -> None:
    seen: list[str] = []

    def grader(request: ModelRequest) -> Any:
        seen.append(request.messages[-1].text)
        assert request.response_format is not None  # structured output, not free text
        passed = "14°C" in request.messages[-1].text
        return json.dumps({"reason": "gives the temperature" if passed else "no temperature",
                           "passed": passed, "score": 1.7 if passed else 0.1})

    graded = judge("Gives the temperature in Celsius.", model=FunctionModel(grader))
    dataset = Dataset([Case("paris", "Weather in Paris?", "It is 14°C in Paris.",
                            checks=[graded])])
    report = anyio.run(lambda: dataset.run(weather_agent()))
    verdict = report.results[0].checks[0]
    assert (verdict.passed, verdict.score, verdict.reason) == (True, 1.0, "gives the temperature")
    assert seen[0].splitlines() == [
        "Rubric: Gives the temperature in Celsius.", "Question: Weather in Paris?",
        "Reference answer: It is 14°C in Paris.", "Answer to grade: It is 14°C in Paris."]
    assert judge("r", model="local").spec == {"judge": {"rubric": "r", "model": "local"}}


@pytest.mark.local_model
def test_the_offline_model_works_as_a_judge() -> None:
    graded = judge("The answer mentions a temperature.", model="local")
    observation = observe("It is 14°C in Paris.", case=Case("c", "Weather in Paris?"))
    result = anyio.run(graded.evaluate, observation)
    # The tiny model's judgement is not trusted; its verdict is well-formed.
    assert isinstance(result.passed, bool) and 0.0 <= result.score <= 1.0
    assert result.reason and not result.reason.startswith("the check raised")


def scripted_report(outputs: dict[str, list[str]], name: str = "d") -> EvalReport:
    cases = [Case(n, "q", checks=[checks.contains("yes")]) for n in outputs]
    repeat = len(next(iter(outputs.values())))
    # Runs go in repeat order (all cases, then all again); concurrency 1 keeps it.
    replies = [outputs[c.name][r] for r in range(repeat) for c in cases]
    agent = Agent(model=ScriptedModel(replies))
    return anyio.run(lambda: Dataset(cases, name=name).run(agent, concurrency=1, repeat=repeat))


def test_comparison_with_a_saved_baseline_lists_regressions_and_improvements(
    tmp_path: Path,
) -> None:
    baseline = scripted_report({"a": ["yes", "yes"], "b": ["no", "no"], "c": ["yes", "yes"],
                                "gone": ["yes", "yes"]})
    baseline.save(tmp_path / "base.json")
    now = scripted_report({"a": ["yes", "no"], "b": ["yes", "yes"], "c": ["yes", "yes"],
                           "new": ["no", "no"]})
    comparison = now.compare(EvalReport.load(tmp_path / "base.json"))
    assert comparison.regressions == [("a", 1.0, 0.5)]
    assert comparison.improvements == [("b", 0.0, 1.0)]
    assert (comparison.added, comparison.removed) == (["new"], ["gone"])
    assert "regressed: a 100% -> 50%" in str(comparison)


def test_report_table_json_and_html(tmp_path: Path) -> None:
    report = scripted_report({"good": ["yes"], "bad": ["nope"]})
    out = io.StringIO()
    report.print(out)
    table = out.getvalue().splitlines()
    assert table[0].split() == ["case", "pass", "score", "latency", "note"]
    assert table[2].split()[:3] == ["good", "1/1", "1.00"]
    assert "contains('yes'): not in 'nope'" in table[3]
    assert "d: 1/2 runs passed (50.0%)" in out.getvalue()
    assert "cost unknown" in out.getvalue()
    report.save(tmp_path / "r.json")
    data = json.loads((tmp_path / "r.json").read_text())
    assert data["summary"]["pass_rate"] == 0.5 and len(data["results"]) == 2
    loaded = EvalReport.load(tmp_path / "r.json")
    assert loaded.results[1].checks[0].reason == report.results[1].checks[0].reason
    report.save(tmp_path / "r.html")
    page = (tmp_path / "r.html").read_text()
    assert "<svg" in page and "pass rate per case" in page and "nope" in page


def test_progress_bar_counts_runs_on_a_terminal() -> None:
    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    import sys

    terminal = Terminal()
    real, sys.stderr = sys.stderr, terminal
    try:
        anyio.run(lambda: Dataset([Case("a", "q"), Case("b", "q")], name="tiny").run(
            Agent(model=ScriptedModel(["x", "y"]))))
    finally:
        sys.stderr = real
    assert "eval tiny [" in terminal.getvalue() and "2/2 runs" in terminal.getvalue()


def test_percentiles_and_bad_arguments() -> None:
    from agentkit.evals.report import percentile

    assert [percentile([4, 1, 3, 2], s) for s in (0.5, 0.9, 1.0)] == [2, 4, 4]
    assert percentile([], 0.5) == 0.0
    with pytest.raises(Exception, match="concurrency and repeat must be at least 1"):
        anyio.run(lambda: Dataset([]).run(weather_agent(), concurrency=0))
    scripted = ScriptedModel([text_response("hi")])
    assert anyio.run(lambda: Dataset([]).run(Agent(model=scripted))).pass_rate == 0.0
