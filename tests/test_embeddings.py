"""Embedders: OpenAIEmbedder over real HTTP against FakeOpenAIServer's /v1/embeddings
(batching, order, dimensions, both wire encodings, cassettes), and LocalEmbedder running
the real multilingual-e5-small weights offline.

Retries and faults of OpenAIEmbedder are in test_model_faults.py.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path

import pytest

from agentkit.embeddings import Embedder, LocalEmbedder, OpenAIEmbedder, cosine
from agentkit.errors import ConfigurationError, LocalModelNotFound, ModelHTTPError
from agentkit.retry import RetryPolicy
from agentkit.testing._fake_endpoints import fake_embedding
from agentkit.testing.cassettes import cassette
from agentkit.testing.fake_openai import FakeOpenAIServer, raw_reply

pytestmark = pytest.mark.anyio


@pytest.fixture
def server() -> Iterator[FakeOpenAIServer]:
    with FakeOpenAIServer() as srv:
        yield srv


def embedder(server: FakeOpenAIServer, **kw: object) -> OpenAIEmbedder:
    return OpenAIEmbedder(base_url=server.base_url, api_key=server.api_key,
                          retry=RetryPolicy(max_attempts=1), **kw)  # type: ignore[arg-type]


async def test_a_thousand_texts_go_in_one_request_in_order(server: FakeOpenAIServer) -> None:
    texts = [f"note {i}: the cat sat on mat number {i}" for i in range(1000)]
    vectors = await embedder(server).embed(texts)
    assert len(server.requests) == 1
    body = server.requests[0].body
    assert body["input"] == texts and body["encoding_format"] == "base64"
    assert body["model"] == "text-embedding-3-small"
    # Decoded from base64 float32: the fake server's vectors, in input order.
    for i in (0, 1, 999):
        assert vectors[i] == pytest.approx(fake_embedding(texts[i]), abs=1e-6)


async def test_batches_respect_the_input_and_token_limits(server: FakeOpenAIServer) -> None:
    texts = [f"text {i}" for i in range(700)]
    vectors = await embedder(server, batch_size=300, concurrency=2).embed(texts)
    sizes = sorted(len(r.body["input"]) for r in server.requests)
    assert sizes == [100, 300, 300]
    assert vectors == [pytest.approx(fake_embedding(t), abs=1e-6) for t in texts]
    long_texts = ["word " * 50_000] * 5  # ~83,000 estimated tokens each
    assert embedder(server).batches(long_texts) == [(0, 3), (3, 5)]


async def test_dimensions_and_float_answers(server: FakeOpenAIServer) -> None:
    vectors = await embedder(server, dimensions=16).embed(["alpha beta"])
    assert server.requests[0].body["dimensions"] == 16 and len(vectors[0]) == 16
    floats = {"object": "list", "model": "m", "usage": {"prompt_tokens": 2, "total_tokens": 2},
              "data": [{"object": "embedding", "index": 1, "embedding": [0.0, 1.0]},
                       {"object": "embedding", "index": 0, "embedding": [1.0, 0.0]}]}
    server.enqueue(raw_reply(floats), endpoint="embeddings")
    assert await embedder(server).embed(["a", "b"]) == [[1.0, 0.0], [0.0, 1.0]]


async def test_a_short_answer_is_an_error(server: FakeOpenAIServer) -> None:
    short = {"object": "list", "data": [{"index": 0, "embedding": [1.0]}]}
    server.enqueue(raw_reply(short), endpoint="embeddings")
    with pytest.raises(ModelHTTPError, match="1 embeddings for 2 texts"):
        await embedder(server).embed(["a", "b"])


async def test_bad_input_is_refused_before_any_request(server: FakeOpenAIServer) -> None:
    with pytest.raises(ConfigurationError, match="item 1 is empty"):
        await embedder(server).embed(["fine", "  "])
    with pytest.raises(ConfigurationError, match="Wrap it"):
        await embedder(server).embed("one string")  # type: ignore[arg-type]
    assert await embedder(server).embed([]) == []
    assert server.requests == []


async def test_a_cassette_records_embeddings(server: FakeOpenAIServer, tmp_path: Path) -> None:
    path = tmp_path / "embeddings.jsonl"
    with cassette(path, mode="record") as tape:
        recorded = await tape.wrap_client(embedder(server)).embed(["hello world"])
    server.stop()
    with cassette(path, mode="replay") as tape:
        replayed = await tape.wrap_client(embedder(server)).embed(["hello world"])
    assert replayed == recorded and tape.unplayed == 0


def test_both_embedders_meet_the_protocol() -> None:
    assert isinstance(OpenAIEmbedder(api_key="k"), Embedder)
    assert isinstance(LocalEmbedder(), Embedder)


# --- LocalEmbedder: the real model ---------------------------------------------------


@pytest.fixture(scope="module")
def local() -> LocalEmbedder:
    return LocalEmbedder()


async def test_local_vectors_are_unit_length_and_rank_by_meaning(local: LocalEmbedder) -> None:
    query, *docs = await local.embed([
        "What is the weather like in Paris?",
        "Paris is sunny and warm today.",
        "The stock market fell sharply on Monday.",
        "Il fait beau et chaud à Paris aujourd'hui.",  # multilingual: same meaning
    ])
    assert len(query) == 384
    assert all(math.isclose(sum(x * x for x in v), 1.0, abs_tol=1e-4) for v in [query, *docs])
    weather, stocks, french = (cosine(query, d) for d in docs)
    assert weather > stocks and french > stocks


async def test_local_passages_are_embedded_differently_from_queries(
    local: LocalEmbedder,
) -> None:
    text = ["Paris is sunny and warm today."]
    (as_query,), (as_passage,) = await local.embed(text), await local.embed_passages(text)
    assert 0.8 < cosine(as_query, as_passage) < 0.9999


async def test_local_weights_missing_say_how_to_pull(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AGENTKIT_HOME", str(tmp_path))
    with pytest.raises(LocalModelNotFound, match="agentkit models pull e5-small"):
        await LocalEmbedder().embed(["hi"])
