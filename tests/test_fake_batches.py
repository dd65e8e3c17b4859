"""The fake server's Files and Batch API, driven by the real `openai` client over HTTP."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable, Iterator
from typing import Any, TypeVar

import openai
import pytest

from agentkit.testing.fake_openai import FakeOpenAIServer, error_reply

T = TypeVar("T")


def echo(body: dict[str, Any]) -> str:
    return "echo " + body["messages"][-1]["content"]


@pytest.fixture
def server() -> Iterator[FakeOpenAIServer]:
    with FakeOpenAIServer(handler=echo) as fake:
        yield fake


def run(fn: Callable[[openai.AsyncOpenAI], Awaitable[T]], server: FakeOpenAIServer) -> T:
    async def main() -> T:
        async with openai.AsyncOpenAI(base_url=server.base_url, api_key=server.api_key,
                                      max_retries=0, timeout=10) as client:
            return await fn(client)

    return asyncio.run(main())


def batch_file(*prompts: str) -> bytes:
    lines = [
        json.dumps({"custom_id": f"r{i}", "method": "POST", "url": "/v1/chat/completions",
                    "body": {"model": "gpt-4o-mini",
                             "messages": [{"role": "user", "content": p}]}})
        for i, p in enumerate(prompts)
    ]
    return ("\n".join(lines) + "\n").encode()


async def start(client: openai.AsyncOpenAI, data: bytes) -> Any:
    uploaded = await client.files.create(file=("in.jsonl", data), purpose="batch")
    return await client.batches.create(input_file_id=uploaded.id,
                                       endpoint="/v1/chat/completions", completion_window="24h")


async def lines(client: openai.AsyncOpenAI, file_id: str | None) -> list[dict[str, Any]]:
    assert file_id is not None
    content = await client.files.content(file_id)
    return [json.loads(line) for line in content.content.splitlines()]


def test_files_upload_retrieve_download_list_delete(server: FakeOpenAIServer) -> None:
    async def scenario(client: openai.AsyncOpenAI) -> None:
        made = await client.files.create(file=("data.jsonl", b'{"a": 1}\n'), purpose="batch")
        assert (made.filename, made.purpose, made.bytes) == ("data.jsonl", "batch", 9)
        assert (await client.files.retrieve(made.id)).id == made.id
        assert (await client.files.content(made.id)).content == b'{"a": 1}\n'
        assert [f.id async for f in client.files.list()] == [made.id]
        assert (await client.files.delete(made.id)).deleted
        with pytest.raises(openai.NotFoundError, match=made.id):
            await client.files.retrieve(made.id)

    run(scenario, server)


def test_batch_reports_in_progress_then_completes_with_answers_by_custom_id(
    server: FakeOpenAIServer,
) -> None:
    server.batches.polls_until_done = 2

    async def scenario(client: openai.AsyncOpenAI) -> None:
        batch = await start(client, batch_file("a", "b"))
        assert batch.status == "validating"
        seen = [(await client.batches.retrieve(batch.id)).status for _ in range(3)]
        assert seen == ["in_progress", "in_progress", "completed"]
        done = await client.batches.retrieve(batch.id)
        assert done.request_counts is not None
        assert (done.request_counts.total, done.request_counts.completed) == (2, 2)
        assert done.error_file_id is None
        out = await lines(client, done.output_file_id)
        answers = {line["custom_id"]: line["response"]["body"]["choices"][0]["message"]["content"]
                   for line in out}
        assert answers == {"r0": "echo a", "r1": "echo b"}
        assert [b.id async for b in client.batches.list()] == [batch.id]

    run(scenario, server)


def test_partially_failed_batch_has_error_status_lines(server: FakeOpenAIServer) -> None:
    server.enqueue("first", error_reply(500), "third")

    async def scenario(client: openai.AsyncOpenAI) -> None:
        batch = await start(client, batch_file("a", "b", "c"))
        done = await client.batches.retrieve(batch.id)
        assert done.status == "completed"
        assert done.request_counts is not None
        assert (done.request_counts.completed, done.request_counts.failed) == (2, 1)
        statuses = {line["custom_id"]: line["response"]["status_code"]
                    for line in await lines(client, done.output_file_id)}
        assert statuses == {"r0": 200, "r1": 500, "r2": 200}

    run(scenario, server)


def test_expired_batch_puts_unfinished_requests_in_the_error_file(
    server: FakeOpenAIServer,
) -> None:
    server.batches.expire_next(after=1)

    async def scenario(client: openai.AsyncOpenAI) -> None:
        batch = await start(client, batch_file("a", "b", "c"))
        done = await client.batches.retrieve(batch.id)
        assert done.status == "expired"
        assert [x["custom_id"] for x in await lines(client, done.output_file_id)] == ["r0"]
        errors = await lines(client, done.error_file_id)
        assert [(x["custom_id"], x["error"]["code"]) for x in errors] == [
            ("r1", "batch_expired"), ("r2", "batch_expired")]

    run(scenario, server)


def test_invalid_input_fails_the_batch_naming_the_line(server: FakeOpenAIServer) -> None:
    async def scenario(client: openai.AsyncOpenAI) -> None:
        batch = await start(client, batch_file("a") + b'{"custom_id": "x"}\n')
        done = await client.batches.retrieve(batch.id)
        assert done.status == "failed"
        assert done.errors is not None and done.errors.data is not None
        assert done.errors.data[0].line == 2

        server.batches.fail_next("Too many requests in one file.")
        scripted = await start(client, batch_file("a"))
        failed = await client.batches.retrieve(scripted.id)
        assert failed.errors is not None and failed.errors.data is not None
        assert (failed.status, failed.errors.data[0].message) == (
            "failed", "Too many requests in one file.")

    run(scenario, server)


def test_cancel_moves_through_cancelling_to_cancelled(server: FakeOpenAIServer) -> None:
    server.batches.polls_until_done = 5

    async def scenario(client: openai.AsyncOpenAI) -> None:
        batch = await start(client, batch_file("a", "b"))
        assert (await client.batches.cancel(batch.id)).status == "cancelling"
        done = await client.batches.retrieve(batch.id)
        assert done.status == "cancelled"
        codes = {x["error"]["code"] for x in await lines(client, done.error_file_id)}
        assert codes == {"batch_cancelled"}
        with pytest.raises(openai.ConflictError):
            await client.batches.cancel(batch.id)

    run(scenario, server)


def test_batch_needs_a_batch_purpose_file_and_known_ids(server: FakeOpenAIServer) -> None:
    async def scenario(client: openai.AsyncOpenAI) -> None:
        other = await client.files.create(file=("x.jsonl", batch_file("a")), purpose="fine-tune")
        with pytest.raises(openai.BadRequestError, match="purpose"):
            await client.batches.create(input_file_id=other.id,
                                        endpoint="/v1/chat/completions",
                                        completion_window="24h")
        with pytest.raises(openai.NotFoundError, match="batch-nope"):
            await client.batches.retrieve("batch-nope")

    run(scenario, server)
