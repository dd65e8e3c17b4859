"""agentkit's pytest plugin, active wherever agentkit is installed (``pytest11`` entry point).

* Real model requests are blocked in every test (see
  :func:`agentkit.testing.capture.block_model_requests`) unless the test is marked
  ``@pytest.mark.allow_model_requests``.
* Fixtures: ``fake_openai`` (a started ``FakeOpenAIServer`` with ``OPENAI_BASE_URL`` and
  ``OPENAI_API_KEY`` pointing at it), ``test_model`` (a ``TestModel``) and ``cassette``
  (a cassette in ``cassettes/<test name>.jsonl`` next to the test file, active for the
  test).
* ``--agentkit-record`` re-records every cassette the tests use.

agentkit itself is imported only when a fixture or the blocker needs it.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from agentkit.testing.cassettes import Cassette
    from agentkit.testing.fake_openai import FakeOpenAIServer
    from agentkit.testing.test_model import TestModel

__all__ = ["cassette", "fake_openai", "test_model"]

_RECORD_OPTION = "--agentkit-record"


def pytest_addoption(parser: pytest.Parser) -> None:
    """Add ``--agentkit-record``."""
    group = parser.getgroup("agentkit")
    group.addoption(
        _RECORD_OPTION,
        action="store_true",
        default=False,
        help="agentkit: call the real models and (re)record every cassette the tests use",
    )


def pytest_configure(config: pytest.Config) -> None:
    """Register the ``allow_model_requests`` marker."""
    config.addinivalue_line(
        "markers",
        "allow_model_requests: let this test send requests to real models "
        "(agentkit blocks them by default)",
    )


@pytest.fixture(autouse=True)
def _agentkit_block_model_requests(request: pytest.FixtureRequest) -> Iterator[None]:
    if request.node.get_closest_marker("allow_model_requests") is not None:
        yield
        return
    from agentkit.testing.capture import block_model_requests

    with block_model_requests():
        yield


@pytest.fixture
def fake_openai(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeOpenAIServer]:
    """A started FakeOpenAIServer; ``OPENAI_BASE_URL`` and ``OPENAI_API_KEY`` point at it
    for the test, so ``Agent(model="gpt-4o-mini")`` talks to it."""
    from agentkit.testing.fake_openai import FakeOpenAIServer

    with FakeOpenAIServer() as server:
        monkeypatch.setenv("OPENAI_BASE_URL", server.base_url)
        monkeypatch.setenv("OPENAI_API_KEY", server.api_key)
        yield server


@pytest.fixture
def test_model() -> TestModel:
    """A fresh ``TestModel()``: calls every tool once, then answers."""
    from agentkit.testing.test_model import TestModel

    return TestModel()


@pytest.fixture
def cassette(request: pytest.FixtureRequest) -> Iterator[Cassette]:
    """A cassette for this test, active while it runs: ``cassettes/<test name>.jsonl``
    next to the test file. Replays when the file exists, records it otherwise; with
    ``--agentkit-record`` always records."""
    from agentkit.testing.cassettes import Cassette

    record = bool(request.config.getoption(_RECORD_OPTION))
    path = request.path.parent / "cassettes" / f"{_file_name(request.node.nodeid)}.jsonl"
    with Cassette(path, "record" if record else "once") as active:
        yield active


def _file_name(nodeid: str) -> str:
    # "tests/test_x.py::TestA::test_b[p-1]" -> "TestA.test_b-p-1-"
    name = ".".join(nodeid.split("::")[1:])
    return re.sub(r"[^\w.-]+", "-", name)
