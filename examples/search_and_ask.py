"""Search and ask: embed a few paragraphs, pick the ones closest to the question, and let
an agent answer from them.

    python examples/search_and_ask.py                    # offline: local embedder and model
    python examples/search_and_ask.py "Can I pay with a gift card?"
    OPENAI_API_KEY=sk-... python examples/search_and_ask.py

The paragraphs are embedded with ``LocalEmbedder`` (multilingual-e5-small on the CPU;
``agentkit models pull e5-small`` fetches it once), as passages; the question as a query.
The closest paragraphs by cosine similarity (two with an API model, one for the small
offline model) go into the agent's instructions, and the agent answers: the offline model
without a key, ``gpt-4o-mini`` with one. Swap in
``OpenAIEmbedder()`` to embed with the API instead.
"""

from __future__ import annotations

import asyncio
import os
import sys

from agentkit import Agent, ModelSettings, RunContext
from agentkit.embeddings import LocalEmbedder, cosine

PARAGRAPHS = [
    "Returns: unworn clothes can be returned within 30 days of delivery for a full refund. "
    "Print the prepaid label from your order page and drop the parcel at any post office.",
    "Shipping: orders placed before 2 pm leave the warehouse the same day. Delivery takes "
    "2 to 4 working days in Europe and 5 to 8 days elsewhere.",
    "Payment: we accept credit cards, PayPal and our own gift cards. Gift cards never "
    "expire and can be combined with one discount code per order.",
    "Stores: our Lyon and Ghent shops are open Monday to Saturday, 10 am to 7 pm. They "
    "take returns of online orders too.",
    "Repairs: zips and seams are repaired free of charge for two years after purchase. "
    "Send the item with the repair form; it comes back within three weeks.",
]
OFFLINE = not os.environ.get("OPENAI_API_KEY")
# The 135M offline model answers well from one short note and wanders off with more.
TOP_K = 1 if OFFLINE else 2



def instructions(ctx: RunContext[str]) -> str:
    """The system prompt, with the notes found for this question (the run's context)."""
    return (
        "You are a shop assistant. Answer in one or two sentences, using only these "
        f"notes:\n{ctx.deps}"
    )


embedder = LocalEmbedder()
agent: Agent[str] = Agent(
    name="shop-assistant",
    instructions=instructions,
    model="local" if OFFLINE else "gpt-4o-mini",
    settings=ModelSettings(temperature=0),
)


async def search(question: str, top_k: int = TOP_K) -> list[tuple[float, str]]:
    """The ``top_k`` paragraphs closest to ``question``, with their scores, best first."""
    passages = await embedder.embed_passages(PARAGRAPHS)
    (query,) = await embedder.embed([question])
    scored = sorted(((cosine(query, p), text) for p, text in zip(passages, PARAGRAPHS,
                                                                   strict=True)), reverse=True)
    return scored[:top_k]


async def main(question: str = "How long do I have to return a jacket?") -> str:
    """Search the paragraphs for ``question``, answer it from the best ones, print both."""
    print(f"you> {question}")
    best = await search(question)
    for score, text in best:
        print(f"  {score:.3f}  {text[:70]}...")
    notes = "\n".join(f"- {text}" for _, text in best)
    result = await agent.run(question, context=notes)
    print(f"assistant> {result.output}  [model: {agent.model.name}]")
    return str(result.output)


if __name__ == "__main__":
    asyncio.run(main(*sys.argv[1:2]))
