"""Run many independent single-turn requests through OpenAI's Batch API (half the price).

``BatchRunner(model)`` writes the requests as JSONL, uploads the file, creates a batch,
polls it with backoff, downloads the output and error files and maps every line back to
its request by ``custom_id``. Requests that failed for a reason a retry can fix (a 5xx,
a 429, an expired batch) are resubmitted in a new batch. With ``state_path=`` the job is
saved after every step, so a later process can collect a batch that is still running
with ``await runner.resume(batch_id)``; the state file holds the requests and results,
never the API key.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import anyio

from agentkit._progress import Progress
from agentkit.errors import BatchError, ConfigurationError
from agentkit.messages import Message, from_openai
from agentkit.models.base import Model, ModelRequest
from agentkit.settings import ModelSettings
from agentkit.usage import Usage

if TYPE_CHECKING:
    import openai

    from agentkit.models.openai import OpenAIChatModel

__all__ = ["BatchRequest", "BatchResult", "BatchRunner"]

_log = logging.getLogger("agentkit")

BatchRequest = str | Sequence[Message | Mapping[str, Any]]
"""One request: a prompt (a user message) or a whole list of messages."""

_ENDPOINT: Literal["/v1/chat/completions"] = "/v1/chat/completions"
_TERMINAL = ("completed", "failed", "expired", "cancelled")
_STATE_VERSION = 1
# Failures a new batch can fix: the server's trouble, not the request's.
_RETRYABLE_CODES = ("batch_expired",)


@dataclass(frozen=True, slots=True)
class BatchResult:
    """The outcome of one request of a batch.

    Attributes:
        custom_id: The id the request had in the batch file (``request-<index>``).
        output: The assistant's text (None on error).
        message: The whole assistant message (tool calls included; None on error).
        error: Why the request failed (None on success).
        usage: Tokens this request spent.
    """

    custom_id: str
    output: str | None = None
    message: Message | None = None
    error: str | None = None
    usage: Usage = field(default_factory=Usage)

    @property
    def ok(self) -> bool:
        """Whether the request was answered."""
        return self.error is None


class BatchRunner:
    """Run requests through the Batch API of an OpenAI-compatible server.

    Args:
        model: An :class:`~agentkit.models.OpenAIChatModel` or a model name (its server
            and key come from the environment like any ``OpenAIChatModel``).
        instructions: A system message put first in every prompt-string request.
        settings: Sampling settings for every request (temperature, max_tokens, ...).
        state_path: A JSON file where jobs are saved after each step, so that
            :meth:`resume` works from another process. Holds no secrets.
        poll_interval: Seconds before the first status check; each later wait is 1.5×
            longer, up to ``max_poll_interval``.
        max_poll_interval: The longest wait between two status checks.
        completion_window: The batch's window (OpenAI accepts ``"24h"``).
        max_resubmits: How many new batches may retry requests that failed for a reason
            a retry can fix (5xx, 429, expired).
    """

    def __init__(
        self,
        model: OpenAIChatModel | str,
        *,
        instructions: str | None = None,
        settings: ModelSettings | None = None,
        state_path: str | os.PathLike[str] | None = None,
        poll_interval: float = 5.0,
        max_poll_interval: float = 60.0,
        completion_window: str = "24h",
        max_resubmits: int = 2,
    ) -> None:
        from agentkit.models.openai import OpenAIChatModel

        resolved: Model = OpenAIChatModel(model) if isinstance(model, str) else model
        if not isinstance(resolved, OpenAIChatModel):
            raise ConfigurationError(
                f"BatchRunner needs an OpenAIChatModel (a server with the Batch API); got "
                f"{type(resolved).__name__}. Run local models with agent.run instead."
            )
        if poll_interval <= 0 or max_poll_interval < poll_interval:
            raise ConfigurationError(
                f"poll_interval must be > 0 and max_poll_interval >= poll_interval; got "
                f"{poll_interval} and {max_poll_interval}"
            )
        self.model = resolved
        self.instructions = instructions
        self.settings = settings or ModelSettings()
        self.state_path = Path(state_path) if state_path is not None else None
        self.poll_interval = poll_interval
        self.max_poll_interval = max_poll_interval
        self.completion_window = completion_window
        self.max_resubmits = max_resubmits
        self._jobs: dict[str, dict[str, Any]] = {}

    def __repr__(self) -> str:
        return f"BatchRunner(model={self.model!r}, state_path={self.state_path!r})"

    # --- public -------------------------------------------------------------------------

    async def run(self, requests: Sequence[BatchRequest]) -> list[BatchResult]:
        """Submit ``requests`` as a batch, wait for it and return one result per request,
        in input order."""
        return await self.resume(await self.submit(requests))

    async def submit(self, requests: Sequence[BatchRequest]) -> str:
        """Upload ``requests`` and create a batch; return its id (the job's id for
        :meth:`resume`). The job is saved to ``state_path`` before this returns."""
        if isinstance(requests, str) or not requests:
            raise ConfigurationError(
                "submit() needs a non-empty list of requests (prompt strings or message "
                f"lists); got {requests!r:.80}"
            )
        bodies = {f"request-{i}": self._body(r, i) for i, r in enumerate(requests)}
        batch_id = await self._create(bodies)
        job = {"version": _STATE_VERSION, "model": self.model.name, "order": list(bodies),
               "bodies": bodies, "results": {}, "current": batch_id, "resubmits": 0}
        self._jobs[batch_id] = job
        self._save()
        return batch_id

    async def resume(self, batch_id: str) -> list[BatchResult]:
        """Wait for the job started by :meth:`submit` (in this process or, with
        ``state_path``, in an earlier one) and return its results in input order."""
        job = self._job(batch_id)
        while True:
            batch = await self._wait(job["current"], len(job["bodies"]))
            await self._collect(job, batch)
            retry = [cid for cid in job["order"] if job["results"].get(cid, {}).get("retry")]
            if not retry or job["resubmits"] >= self.max_resubmits:
                break
            _log.info("agentkit: batch %s: resubmitting %d request(s)", batch.id, len(retry))
            job["current"] = await self._create({cid: job["bodies"][cid] for cid in retry})
            job["resubmits"] += 1
            self._save()
        return [self._result(cid, job["results"].get(cid)) for cid in job["order"]]

    # --- steps --------------------------------------------------------------------------

    def _body(self, request: BatchRequest, index: int) -> dict[str, Any]:
        from agentkit.models._openai_wire import build_body

        if isinstance(request, str):
            messages = [Message.user(request)]
            if self.instructions is not None:
                messages.insert(0, Message.system(self.instructions))
        else:
            try:
                messages = from_openai(request)
            except ConfigurationError as exc:
                raise ConfigurationError(f"request {index}: {exc}") from None
        model = self.model
        return build_body(model.name, ModelRequest(messages, settings=self.settings),
                          stream=False, max_tokens_field=model.max_tokens_field,
                          user_field=model.user_field)

    async def _client(self) -> openai.AsyncOpenAI:
        self.model.require_key()
        return await self.model._client()

    async def _create(self, bodies: Mapping[str, dict[str, Any]]) -> str:
        lines = [
            json.dumps({"custom_id": cid, "method": "POST", "url": _ENDPOINT, "body": body},
                       ensure_ascii=False, separators=(",", ":"))
            for cid, body in bodies.items()
        ]
        client = await self._client()
        data = ("\n".join(lines) + "\n").encode()
        uploaded = await client.files.create(file=("batch.jsonl", data, "application/jsonl"),
                                             purpose="batch")
        batch = await client.batches.create(
            input_file_id=uploaded.id, endpoint=_ENDPOINT,
            completion_window=self.completion_window,  # type: ignore[arg-type]
            metadata={"created_by": "agentkit"},
        )
        _log.info("agentkit: created batch %s with %d request(s)", batch.id, len(lines))
        return batch.id

    async def _wait(self, batch_id: str, total: int) -> Any:
        import openai

        client = await self._client()
        delay = self.poll_interval
        with Progress(f"batch {batch_id}", total, unit="requests") as progress:
            while True:
                try:
                    batch = await client.batches.retrieve(batch_id)
                except openai.NotFoundError:
                    raise BatchError(
                        f"batch {batch_id!r} does not exist on {self.model.base_url or 'OpenAI'}"
                        "; check the id and the model's base_url", batch_id=batch_id,
                    ) from None
                except (openai.APIConnectionError, openai.InternalServerError,
                        openai.RateLimitError) as exc:
                    # Polling is idempotent: a transient error only delays the next look.
                    _log.warning("agentkit: polling batch %s failed (%s); retrying",
                                 batch_id, type(exc).__name__)
                    batch = None
                if batch is not None:
                    counts = batch.request_counts
                    if counts is not None:
                        progress.advance(counts.completed + counts.failed - progress.done)
                    if batch.status in _TERMINAL:
                        return batch
                await anyio.sleep(delay)
                delay = min(delay * 1.5, self.max_poll_interval)

    async def _collect(self, job: dict[str, Any], batch: Any) -> None:
        if batch.status == "failed":
            reasons = "; ".join(
                f"line {e.line}: {e.message}" if e.line else str(e.message)
                for e in (batch.errors.data if batch.errors and batch.errors.data else [])
            )
            raise BatchError(
                f"batch {batch.id} failed: {reasons or 'no reason given'}. Fix the requests "
                "and submit again.", batch_id=batch.id,
            )
        for file_id in (batch.output_file_id, batch.error_file_id):
            if file_id:
                for line in (await self._download(file_id)).splitlines():
                    if line.strip():
                        self._record(job, json.loads(line))
        for cid in job["order"]:
            # A request the batch never reported (a cancel before it ran) is failed.
            if cid in job["bodies"] and cid not in job["results"]:
                job["results"][cid] = {"error": f"batch {batch.id} ended {batch.status} "
                                                "without an answer for this request"}
        self._save()

    async def _download(self, file_id: str) -> bytes:
        client = await self._client()
        content = await client.files.content(file_id)
        return content.content

    @staticmethod
    def _record(job: dict[str, Any], line: dict[str, Any]) -> None:
        cid = line.get("custom_id")
        if cid not in job["bodies"]:
            return
        response, error = line.get("response"), line.get("error")
        if error:
            code = error.get("code")
            job["results"][cid] = {"error": f"{code}: {error.get('message')}",
                                   "retry": code in _RETRYABLE_CODES}
            return
        status = response.get("status_code") if isinstance(response, dict) else None
        body = response.get("body") if isinstance(response, dict) else None
        if status == 200:
            job["results"][cid] = {"body": body}
            return
        message = body.get("error", {}).get("message") if isinstance(body, dict) else body
        job["results"][cid] = {"error": f"HTTP {status}: {message}",
                               "retry": status == 429 or (isinstance(status, int)
                                                          and status >= 500)}

    @staticmethod
    def _result(cid: str, outcome: dict[str, Any] | None) -> BatchResult:
        from agentkit.models._openai_wire import MalformedResponse, parse_completion

        if outcome is None:
            return BatchResult(cid, error="no result was recorded for this request")
        if "body" not in outcome:
            return BatchResult(cid, error=str(outcome.get("error")))
        try:
            response = parse_completion(outcome["body"])
        except MalformedResponse as exc:
            return BatchResult(cid, error=f"malformed response: {exc}")
        message = response.message
        return BatchResult(cid, output=message.text, message=message, usage=response.usage)

    # --- state --------------------------------------------------------------------------

    def _job(self, batch_id: str) -> dict[str, Any]:
        job = self._jobs.get(batch_id)
        if job is None and self.state_path is not None and self.state_path.exists():
            self._jobs.update(self._load())
            job = self._jobs.get(batch_id)
        if job is None:
            where = f"in {self.state_path}" if self.state_path else "in this process"
            raise BatchError(
                f"no job for batch {batch_id!r} {where}; resume() takes the id submit() "
                "returned, with the same state_path", batch_id=batch_id,
            )
        return job

    def _load(self) -> dict[str, dict[str, Any]]:
        assert self.state_path is not None
        try:
            data = json.loads(self.state_path.read_text(encoding="utf-8"))
            jobs: dict[str, dict[str, Any]] = data["jobs"]
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise BatchError(
                f"cannot read the batch state file {self.state_path}: {exc}; it is written "
                "by BatchRunner(state_path=...) and must not be edited"
            ) from None
        return jobs

    def _save(self) -> None:
        if self.state_path is None:
            return
        jobs = self._load() if self.state_path.exists() else {}
        jobs.update(self._jobs)
        text = json.dumps({"version": _STATE_VERSION, "jobs": jobs}, ensure_ascii=False)
        # Written aside then renamed: a process killed mid-write leaves the old state.
        fd, tmp = tempfile.mkstemp(dir=self.state_path.parent or ".", suffix=".tmp")
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.replace(tmp, self.state_path)
