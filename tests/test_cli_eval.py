"""`agentkit eval`: the report on stdout, saved reports, baselines and exit codes for CI."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from agentkit.cli import main

APP = '''
from agentkit import Agent
from agentkit.testing import FunctionModel

def answer(request):
    question = request.messages[-1].text
    return "Paris" if "France" in question else "I do not know"

agent = Agent(name="capitals", model=FunctionModel(answer))
'''

DATASET = """\
cases:
  - name: france
    input: Capital of France?
    expected_output: Paris
  - name: peru
    input: Capital of Peru?
    expected_output: Lima
"""


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    (tmp_path / "capitals_app.py").write_text(APP)
    (tmp_path / "capitals.yaml").write_text(DATASET)
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    return tmp_path


def test_eval_prints_the_table_and_saves_json_and_html(
    workdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["eval", "capitals.yaml", "--agent", "capitals_app:agent", "-o", "r.json",
                 "-o", "r.html"])
    assert code == 0  # no bar given
    out = capsys.readouterr().out
    assert "capitals: 1/2 runs passed (50.0%)" in out
    assert "equals('Lima'): got 'I do not know'" in out
    assert json.loads((workdir / "r.json").read_text())["summary"]["pass_rate"] == 0.5
    assert "<svg" in (workdir / "r.html").read_text()


def test_eval_exits_1_below_the_bar_and_0_at_it(
    workdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["eval", "capitals.yaml", "--agent", "capitals_app:agent",
                 "--min-pass-rate", "0.9"]) == 1
    assert "pass rate 50.0% is below --min-pass-rate 90.0%" in capsys.readouterr().err
    assert main(["eval", "capitals.yaml", "--agent", "capitals_app:agent",
                 "--min-pass-rate", "0.5"]) == 0


def test_eval_compares_with_a_baseline(workdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["eval", "capitals.yaml", "--agent", "capitals_app:agent", "-o", "b.json"]) == 0
    (workdir / "capitals.yaml").write_text(DATASET.replace("Lima", "I do not know")
                                           .replace("Paris", "Rome"))
    capsys.readouterr()
    assert main(["eval", "capitals.yaml", "--agent", "capitals_app:agent",
                 "--baseline", "b.json"]) == 0
    out = capsys.readouterr().out
    assert "pass rate 50.0% -> 50.0% (1 regression(s), 1 improvement(s))" in out
    assert "regressed: france 100% -> 0%" in out and "improved:  peru 0% -> 100%" in out


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["missing.yaml", "--agent", "capitals_app:agent"], "cannot read dataset missing.yaml"),
        (["capitals.yaml", "--agent", "capitals_app:nope"], "nope"),
        (["capitals.yaml", "--agent", "capitals_app:agent", "--baseline", "capitals.yaml"],
         "is not a saved eval report"),
        (["capitals.yaml", "--agent", "capitals_app:agent", "--min-pass-rate", "90"],
         "--min-pass-rate must be between 0 and 1"),
    ],
)
def test_bad_usage_exits_2_with_the_reason(
    workdir: Path, capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    assert main(["eval", *args]) == 2
    assert message in capsys.readouterr().err
