"""Structured output: the answer is a validated pydantic object, not text.

    python examples/structured_output.py                 # offline model when no OPENAI_API_KEY
    python examples/structured_output.py "Grace Hopper, born 1906 in New York, admiral."
    OPENAI_API_KEY=sk-... python examples/structured_output.py

``output_type=Person`` makes the run ask for JSON matching Person's schema (a strict
``response_format`` on OpenAI; a grammar on the offline model, so the JSON is always
well-formed), validates it, and sends validation errors back to the model to fix (up to
``output_retries`` times). ``result.output`` is a ``Person``.

The offline model has 135M parameters: the JSON always fits the schema, but it gets facts
wrong more often than a large model (a year or a city may be off). Use a real model for
real extraction work.
"""

from __future__ import annotations

import asyncio
import os
import sys

from pydantic import BaseModel, Field

from agentkit import Agent


class Person(BaseModel):
    """A person mentioned in the text."""

    name: str = Field(description="Full name")
    born: int = Field(description="Year of birth")
    city: str = Field(description="City of birth")
    occupation: str = Field(description="Main occupation, one or two words")


agent: Agent[Person] = Agent(
    name="extractor",
    instructions="Extract the person the user describes. Copy names, years and places "
    "exactly as written.",
    model="gpt-4o-mini" if os.environ.get("OPENAI_API_KEY") else "local",
    output_type=Person,
)


async def main(prompt: str = "Ada Lovelace, born 1815 in London, mathematician.") -> Person:
    """Extract a :class:`Person` from ``prompt`` and print it."""
    print(f"you> {prompt}  [model: {agent.model.name}]")
    result = await agent.run(prompt)
    person = result.output
    print(f"{type(person).__name__}: {person.model_dump_json(indent=2)}")
    print(f"({result.turns} request(s), {result.usage.total_tokens} tokens)")
    return person


if __name__ == "__main__":
    asyncio.run(main(*sys.argv[1:2]))
