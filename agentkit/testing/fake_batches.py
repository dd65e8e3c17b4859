"""The Files and Batch API of :class:`~agentkit.testing.FakeOpenAIServer`.

API summary::

    with FakeOpenAIServer(handler=...) as server:
        server.batches.polls_until_done = 2     # retrieves that still show "in_progress"
        server.batches.expire_next(after=3)     # the next batch expires with 3 requests done
        server.batches.fail_next("bad input")   # the next batch fails validation
        server.batches.files / server.batches.batches   # what was uploaded and created

Endpoints: ``POST /v1/files`` (multipart: ``purpose``, ``file``), ``GET /v1/files``,
``GET /v1/files/{id}``, ``GET /v1/files/{id}/content``, ``DELETE /v1/files/{id}``;
``POST /v1/batches``, ``GET /v1/batches``, ``GET /v1/batches/{id}``,
``POST /v1/batches/{id}/cancel``.

Each line of a batch's input file is answered the way a chat request would be: the next
queued reply, else the server's handler. A scripted error reply (``error_reply(500)``)
becomes a line of the output file with that status, which is how a partially failed batch
is scripted. Requests a batch never reached (expired, cancelled) go to the error file
with code ``batch_expired`` / ``batch_cancelled``, as OpenAI writes them.
"""

from __future__ import annotations

import email.parser
import email.policy
import itertools
import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

__all__ = ["Answer", "FakeBatch", "FakeBatchAPI", "FakeFile"]

Answer = Callable[[dict[str, Any]], tuple[int, Any]]
"""Answers one chat request body with ``(status, json body)``; given by the server."""

_dumps = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode
_ENDPOINTS = ("/v1/chat/completions",)


@dataclass(slots=True)
class FakeFile:
    """An uploaded or generated file."""

    id: str
    filename: str
    purpose: str
    content: bytes
    created_at: int

    def to_json(self) -> dict[str, Any]:
        """The file object as the Files API returns it."""
        return {
            "id": self.id, "object": "file", "bytes": len(self.content),
            "created_at": self.created_at, "filename": self.filename, "purpose": self.purpose,
            "status": "processed", "status_details": None,
        }  # fmt: skip


@dataclass(slots=True)
class _Script:
    """What happens to the next batch created."""

    expire_after: int | None = None
    fail_reason: str | None = None


@dataclass(slots=True)
class FakeBatch:
    """A batch and what the fake has computed for it.

    ``retrieves`` counts ``GET /v1/batches/{id}``; the batch reports ``in_progress`` until
    that reaches ``polls_until_done``.
    """

    id: str
    input_file_id: str
    endpoint: str
    completion_window: str
    metadata: dict[str, Any] | None
    created_at: int
    total: int
    status: str = "validating"
    retrieves: int = 0
    polls_until_done: int = 0
    output_lines: list[bytes] = field(default_factory=list)
    error_lines: list[bytes] = field(default_factory=list)
    completed: int = 0
    failed: int = 0
    errors: list[dict[str, Any]] | None = None
    output_file_id: str | None = None
    error_file_id: str | None = None
    final_status: str = "completed"
    times: dict[str, int] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        """The batch object as the Batch API returns it."""
        stamps = ("in_progress", "finalizing", "completed", "failed", "expired",
                  "cancelling", "cancelled")
        data: dict[str, Any] = {
            "id": self.id, "object": "batch", "endpoint": self.endpoint,
            "errors": None if self.errors is None else {"object": "list", "data": self.errors},
            "input_file_id": self.input_file_id, "completion_window": self.completion_window,
            "status": self.status, "output_file_id": self.output_file_id,
            "error_file_id": self.error_file_id, "created_at": self.created_at,
            "expires_at": self.created_at + 86400,
            "request_counts": {"total": self.total, "completed": self.completed,
                               "failed": self.failed},
            "metadata": self.metadata,
        }  # fmt: skip
        for stamp in stamps:
            data[f"{stamp}_at"] = self.times.get(stamp)
        return data


class FakeBatchAPI:
    """The files and batches a :class:`FakeOpenAIServer` holds, and how it answers them.

    Attributes:
        polls_until_done: How many retrieves of a new batch show ``in_progress`` before it
            is ``completed`` (0: done at the first retrieve).
        files: Uploaded and generated files by id.
        batches: Created batches by id.
    """

    def __init__(self, answer: Answer) -> None:
        self._answer = answer
        self._lock = threading.Lock()
        self._ids = itertools.count(1)
        self._scripts: list[_Script] = []
        self.polls_until_done = 0
        self.files: dict[str, FakeFile] = {}
        self.batches: dict[str, FakeBatch] = {}

    # -- scripting

    def expire_next(self, after: int = 0) -> None:
        """Make the next batch created end ``expired`` with only its first ``after``
        requests answered; the rest go to its error file (code ``batch_expired``)."""
        with self._lock:
            self._scripts.append(_Script(expire_after=after))

    def fail_next(self, reason: str = "The input file is invalid.") -> None:
        """Make the next batch created end ``failed`` (validation) with ``reason``."""
        with self._lock:
            self._scripts.append(_Script(fail_reason=reason))

    # -- routing (called on the server thread)

    def route(self, method: str, path: str, headers: dict[str, str], raw: bytes,
              body: Any) -> tuple[int, str, bytes] | None:
        """Answer a files or batches request: ``(status, content type, body)``, or None
        when ``path`` is not one of these endpoints."""
        parts = path.strip("/").split("/")[1:]  # drop "v1"
        if not parts or parts[0] not in ("files", "batches"):
            return None
        try:
            if parts[0] == "files":
                return self._files(method, parts[1:], headers, raw)
            return self._batches(method, parts[1:], body)
        except _NotFound as missing:
            return _error(404, f"No such {missing.kind}: '{missing.id}'.", "invalid_request_error")

    def _new_id(self, prefix: str) -> str:
        return f"{prefix}-fake{next(self._ids):06d}"

    def _file(self, file_id: str) -> FakeFile:
        found = self.files.get(file_id)
        if found is None:
            raise _NotFound("File", file_id)
        return found

    def _batch(self, batch_id: str) -> FakeBatch:
        found = self.batches.get(batch_id)
        if found is None:
            raise _NotFound("batch", batch_id)
        return found

    def _files(self, method: str, rest: list[str], headers: dict[str, str],
               raw: bytes) -> tuple[int, str, bytes]:
        with self._lock:
            if not rest and method == "POST":
                return self._upload(headers, raw)
            if not rest and method == "GET":
                files = [f.to_json() for f in self.files.values()]
                return _ok({"object": "list", "data": files, "has_more": False})
            if len(rest) == 1 and method == "GET":
                return _ok(self._file(rest[0]).to_json())
            if len(rest) == 1 and method == "DELETE":
                self._file(rest[0])
                del self.files[rest[0]]
                return _ok({"id": rest[0], "object": "file", "deleted": True})
            if len(rest) == 2 and rest[1] == "content" and method == "GET":
                return 200, "application/octet-stream", self._file(rest[0]).content
        return _error(404, f"Invalid URL ({method} /v1/files/{'/'.join(rest)})",
                      "invalid_request_error")

    def _upload(self, headers: dict[str, str], raw: bytes) -> tuple[int, str, bytes]:
        content_type = headers.get("content-type", "")
        if not content_type.startswith("multipart/form-data"):
            return _error(400, "Uploads must be multipart/form-data.", "invalid_request_error")
        # The stdlib MIME parser reads multipart/form-data once given the content type.
        message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
            f"Content-Type: {content_type}\r\n\r\n".encode() + raw
        )
        fields: dict[str, tuple[str | None, bytes]] = {}
        for part in message.iter_parts():
            name = part.get_param("name", header="content-disposition")
            payload = part.get_payload(decode=True)
            if isinstance(name, str) and isinstance(payload, bytes):
                fields[name] = (part.get_filename(), payload)
        if "file" not in fields or "purpose" not in fields:
            return _error(400, "Missing required parameter: 'file' and 'purpose' are required.",
                          "invalid_request_error")
        filename, content = fields["file"]
        made = FakeFile(self._new_id("file"), filename or "upload", fields["purpose"][1].decode(),
                        content, int(time.time()))
        self.files[made.id] = made
        return _ok(made.to_json())

    def _batches(self, method: str, rest: list[str], body: Any) -> tuple[int, str, bytes]:
        with self._lock:
            if not rest and method == "POST":
                return self._create(body)
            if not rest and method == "GET":
                batches = [b.to_json() for b in self.batches.values()]
                return _ok({"object": "list", "data": batches, "has_more": False})
            if len(rest) == 1 and method == "GET":
                batch = self._batch(rest[0])
                batch.retrieves += 1
                self._advance(batch)
                return _ok(batch.to_json())
            if len(rest) == 2 and rest[1] == "cancel" and method == "POST":
                return self._cancel(self._batch(rest[0]))
        return _error(404, f"Invalid URL ({method} /v1/batches/{'/'.join(rest)})",
                      "invalid_request_error")

    def _create(self, body: Any) -> tuple[int, str, bytes]:
        if not isinstance(body, dict):
            return _error(400, "The request body must be a JSON object.", "invalid_request_error")
        input_id = body.get("input_file_id")
        endpoint = body.get("endpoint")
        if not isinstance(input_id, str) or endpoint not in _ENDPOINTS:
            return _error(400, f"input_file_id and an endpoint in {list(_ENDPOINTS)} are "
                          f"required; got endpoint={endpoint!r}", "invalid_request_error")
        source = self._file(input_id)
        if source.purpose != "batch":
            return _error(400, f"File {input_id} has purpose {source.purpose!r}, not 'batch'.",
                          "invalid_request_error")
        script = self._scripts.pop(0) if self._scripts else _Script()
        lines = [line for line in source.content.splitlines() if line.strip()]
        batch = FakeBatch(
            self._new_id("batch"), input_id, endpoint, str(body.get("completion_window", "24h")),
            body.get("metadata"), int(time.time()), len(lines),
            polls_until_done=self.polls_until_done,
        )
        self.batches[batch.id] = batch
        self._compute(batch, lines, script)
        return _ok(batch.to_json())

    def _compute(self, batch: FakeBatch, lines: list[bytes], script: _Script) -> None:
        """Answer the requests now; :meth:`_advance` reveals the outcome on later polls."""
        requests: list[dict[str, Any]] = []
        problems: list[dict[str, Any]] = []
        for number, line in enumerate(lines, 1):
            try:
                request = json.loads(line)
            except ValueError:
                request = None
            if not isinstance(request, dict) or not isinstance(request.get("custom_id"), str) \
                    or request.get("url") != batch.endpoint or not isinstance(
                        request.get("body"), dict):
                problems.append({"code": "invalid_request", "line": number,
                                 "message": "each line needs custom_id, method, url (the "
                                 "batch's endpoint) and a JSON body", "param": None})
            else:
                requests.append(request)
        if script.fail_reason is not None or problems:
            batch.final_status = "failed"
            batch.errors = problems or [
                {"code": "invalid_file", "line": None, "message": script.fail_reason,
                 "param": None}
            ]
            batch.total = 0
            return
        answered = requests if script.expire_after is None else requests[: script.expire_after]
        for request in answered:
            status, response = self._answer(request["body"])
            record = {"id": self._new_id("batch_req"), "custom_id": request["custom_id"],
                      "response": {"status_code": status,
                                   "request_id": self._new_id("req"), "body": response},
                      "error": None}
            batch.output_lines.append(_dumps(record).encode())
            if status == 200:
                batch.completed += 1
            else:
                batch.failed += 1
        for request in requests[len(answered):]:
            record = {"id": self._new_id("batch_req"), "custom_id": request["custom_id"],
                      "response": None,
                      "error": {"code": "batch_expired",
                                "message": "This request could not be executed before the "
                                "completion window expired."}}
            batch.error_lines.append(_dumps(record).encode())
        if script.expire_after is not None:
            batch.final_status = "expired"

    def _advance(self, batch: FakeBatch) -> None:
        if batch.status in ("completed", "failed", "expired", "cancelled"):
            return
        now = int(time.time())
        if batch.status == "cancelling":
            batch.status = "cancelled"
            batch.times["cancelled"] = now
            return
        if batch.final_status == "failed":
            batch.status = "failed"
            batch.times["failed"] = now
            return
        if batch.retrieves <= batch.polls_until_done:
            batch.status = "in_progress"
            batch.times.setdefault("in_progress", now)
            return
        self._finish(batch, batch.final_status)

    def _finish(self, batch: FakeBatch, status: str) -> None:
        now = int(time.time())
        if batch.output_lines:
            batch.output_file_id = self._store(f"{batch.id}_output.jsonl", batch.output_lines)
        if batch.error_lines:
            batch.error_file_id = self._store(f"{batch.id}_error.jsonl", batch.error_lines)
        batch.status = status
        batch.times["finalizing"] = now
        batch.times[status] = now

    def _store(self, name: str, lines: list[bytes]) -> str:
        made = FakeFile(self._new_id("file"), name, "batch_output", b"\n".join(lines) + b"\n",
                        int(time.time()))
        self.files[made.id] = made
        return made.id

    def _cancel(self, batch: FakeBatch) -> tuple[int, str, bytes]:
        if batch.status in ("completed", "failed", "expired", "cancelled"):
            return _error(409, f"Cannot cancel a batch with status {batch.status!r}.",
                          "invalid_request_error")
        # Nothing was delivered before the cancel: every request goes to the error file.
        batch.error_lines = [
            _dumps({"id": self._new_id("batch_req"), "custom_id": json.loads(line)["custom_id"],
                    "response": None,
                    "error": {"code": "batch_cancelled",
                              "message": "The batch was cancelled."}}).encode()
            for line in batch.output_lines
        ] + batch.error_lines
        batch.output_lines, batch.completed, batch.failed = [], 0, 0
        if batch.error_lines:
            batch.error_file_id = self._store(f"{batch.id}_error.jsonl", batch.error_lines)
        batch.status = "cancelling"
        batch.times["cancelling"] = int(time.time())
        return _ok(batch.to_json())


class _NotFound(Exception):
    def __init__(self, kind: str, id: str) -> None:
        super().__init__(kind, id)
        self.kind, self.id = kind, id


def _ok(value: Any) -> tuple[int, str, bytes]:
    return 200, "application/json", _dumps(value).encode()


def _error(status: int, message: str, type_: str) -> tuple[int, str, bytes]:
    body = {"error": {"message": message, "type": type_, "param": None, "code": None}}
    return status, "application/json", _dumps(body).encode()
