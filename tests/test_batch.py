"""BatchRunner against the fake server's Files and Batch API over real HTTP."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest

from agentkit import BatchError, ConfigurationError, Message
from agentkit.batch import BatchRunner
from agentkit.models import LocalModel, OpenAIChatModel
from agentkit.settings import ModelSettings
from agentkit.testing.fake_openai import FakeOpenAIServer, error_reply, text_reply

FAST = {"poll_interval": 0.01, "max_poll_interval": 0.02}


def answer(body: dict[str, Any]) -> Any:
    prompt = body["messages"][-1]["content"]
    if prompt.startswith("broken"):
        return error_reply(400, "bad prompt")
    return text_reply(f"label for {prompt}", usage={"prompt_tokens": 7, "completion_tokens": 3})


@pytest.fixture
def server() -> Iterator[FakeOpenAIServer]:
    with FakeOpenAIServer(handler=answer) as fake:
        yield fake


def model_for(server: FakeOpenAIServer) -> OpenAIChatModel:
    return OpenAIChatModel("gpt-4o-mini", base_url=server.base_url, api_key=server.api_key)


def test_run_returns_one_result_per_request_in_input_order(server: FakeOpenAIServer) -> None:
    server.batches.polls_until_done = 3
    runner = BatchRunner(model_for(server), instructions="Classify.",
                         settings=ModelSettings(temperature=0), **FAST)
    prompts = [f"ticket {i}" for i in range(12)]
    results = anyio.run(runner.run, [*prompts, [{"role": "user", "content": "as messages"}]])
    assert [r.output for r in results] == [f"label for {p}" for p in prompts] + [
        "label for as messages"]
    assert all(r.ok and r.usage.input_tokens == 7 for r in results)
    assert results[0].message == Message.assistant("label for ticket 0")
    uploaded = next(f for f in server.batches.files.values() if f.purpose == "batch")
    first = json.loads(uploaded.content.splitlines()[0])
    assert first["body"]["messages"][0] == {"role": "system", "content": "Classify."}
    assert first["body"]["temperature"] == 0
    polls = [r for r in server.requests if r.method == "GET" and "/batches/" in r.path]
    assert len(polls) == 4  # three times in progress, then done


def test_server_failures_are_resubmitted_and_request_errors_are_not(
    server: FakeOpenAIServer,
) -> None:
    # The first batch: request 1 hits a 500 once; request 2 is a bad request every time.
    server.enqueue(text_reply("label for a"), error_reply(500))
    results = anyio.run(BatchRunner(model_for(server), **FAST).run, ["a", "b", "broken c"])
    assert [r.output for r in results[:2]] == ["label for a", "label for b"]
    assert results[2].output is None
    assert results[2].error is not None and "HTTP 400: bad prompt" in results[2].error
    batches = list(server.batches.batches.values())
    assert [b.total for b in batches] == [3, 1]  # only the 500 went again


def test_expired_batch_resubmits_what_it_did_not_reach(server: FakeOpenAIServer) -> None:
    server.batches.expire_next(after=2)
    results = anyio.run(BatchRunner(model_for(server), **FAST).run, ["a", "b", "c", "d"])
    assert [r.output for r in results] == [f"label for {x}" for x in "abcd"]
    statuses = [b.status for b in server.batches.batches.values()]
    assert statuses == ["expired", "completed"]


def test_resubmits_stop_at_the_limit_with_the_reason(server: FakeOpenAIServer) -> None:
    server.batches.expire_next(after=0)
    server.batches.expire_next(after=0)
    results = anyio.run(BatchRunner(model_for(server), max_resubmits=1, **FAST).run, ["a"])
    assert results[0].error is not None and results[0].error.startswith("batch_expired")
    assert len(server.batches.batches) == 2


def test_another_process_resumes_a_running_batch_from_the_state_file(
    server: FakeOpenAIServer, tmp_path: Path,
) -> None:
    server.batches.polls_until_done = 100
    state = tmp_path / "batches.json"
    batch_id = anyio.run(BatchRunner(model_for(server), state_path=state, **FAST).submit,
                         ["x", "y"])
    saved = state.read_text()
    assert batch_id in saved and server.api_key not in saved
    server.batches.batches[batch_id].polls_until_done = 0
    later = BatchRunner(model_for(server), state_path=state, **FAST)  # a new process's runner
    results = anyio.run(later.resume, batch_id)
    assert [r.output for r in results] == ["label for x", "label for y"]
    assert server.api_key not in state.read_text()


def test_failed_batch_and_unknown_ids_raise_batch_error(server: FakeOpenAIServer,
                                                         tmp_path: Path) -> None:
    server.batches.fail_next("The input file is too large.")
    runner = BatchRunner(model_for(server), state_path=tmp_path / "s.json", **FAST)
    with pytest.raises(BatchError, match="too large") as failed:
        anyio.run(runner.run, ["a"])
    assert failed.value.batch_id is not None
    with pytest.raises(BatchError, match="no job for batch 'batch-unknown'"):
        anyio.run(runner.resume, "batch-unknown")


def test_bad_configuration_is_refused_up_front() -> None:
    with pytest.raises(ConfigurationError, match="needs an OpenAIChatModel"):
        BatchRunner(LocalModel())  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="poll_interval"):
        BatchRunner(OpenAIChatModel("gpt-4o-mini", api_key="k"), poll_interval=10,
                    max_poll_interval=1)
    runner = BatchRunner(OpenAIChatModel("gpt-4o-mini", api_key="k"))
    with pytest.raises(ConfigurationError, match="non-empty list"):
        anyio.run(runner.submit, [])
    with pytest.raises(ConfigurationError, match="request 1"):
        anyio.run(runner.submit, ["ok", [{"role": "robot"}]])
