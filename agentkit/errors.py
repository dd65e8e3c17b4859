"""Every exception a user of agentkit can catch, in one hierarchy.

All of them derive from :class:`AgentkitError`. Errors raised out of a run also carry the
run so far: ``err.messages`` (every message, typed) and ``err.usage`` (what was spent), so
nothing is lost when a run fails. Messages never contain secrets such as API keys.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from agentkit.messages import Message
    from agentkit.run import RunState
    from agentkit.usage import Usage

__all__ = [
    "AgentkitError",
    "AuthenticationError",
    "BatchError",
    "CassetteMismatch",
    "ConfigurationError",
    "ContentFiltered",
    "ContextLengthExceeded",
    "DatasetError",
    "GuardrailTripped",
    "HookError",
    "IdempotencyConflict",
    "LocalModelCorrupted",
    "LocalModelNotFound",
    "MCPError",
    "MaxTurnsExceeded",
    "MissingAPIKey",
    "ModelConnectionError",
    "ModelDownloadError",
    "ModelError",
    "ModelHTTPError",
    "ModelNotFound",
    "ModelRequestsBlocked",
    "NotFound",
    "NotPending",
    "OutputTruncated",
    "OutputValidationError",
    "PermissionDenied",
    "QuotaExceeded",
    "RateLimited",
    "RunCancelled",
    "RunError",
    "RunStatusError",
    "RunTimeout",
    "StoreError",
    "StoreUnavailable",
    "StoreVersionError",
    "ThreadBusy",
    "ToolArgumentsError",
    "ToolCallError",
    "ToolChoiceIgnored",
    "ToolDefinitionError",
    "ToolError",
    "ToolRetriesExceeded",
    "ToolTimeout",
    "UnknownToolError",
    "UsageLimitExceeded",
]


class AgentkitError(Exception):
    """Base class of every agentkit exception.

    When the error escapes from a run, ``messages`` holds every message of the run so far
    (history included), ``usage`` what the run spent and ``state`` the
    :class:`~agentkit.RunState` to resume it from (``agent.resume(error.state)``);
    otherwise they are empty.
    """

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.messages: list[Message] = []
        self.usage: Usage | None = None
        self.state: RunState | None = None

    def attach_run(self, state: RunState) -> None:
        """Record the run state this error escaped from (called by the loop)."""
        self.messages = list(state.messages)
        self.usage = state.usage
        self.state = state


# --- configuration -------------------------------------------------------------------


class ConfigurationError(AgentkitError):
    """agentkit was configured in a way that cannot work; the message says how to fix it."""


class ToolDefinitionError(ConfigurationError):
    """A function cannot be turned into a tool (unsupported parameter, bad schema, ...)."""


class MissingAPIKey(ConfigurationError):
    """No API key was given for a model that needs one."""


class LocalModelNotFound(ConfigurationError):
    """The offline model file is not on disk; the message gives the command that pulls it."""


class LocalModelCorrupted(LocalModelNotFound):
    """The offline model file is on disk but does not hash to the sha256 recorded when it
    was pulled; the message names the file and the command that downloads it again."""


class ModelDownloadError(AgentkitError):
    """A model file could not be downloaded, or did not match its pinned size and sha256."""


# --- tool calls (model-facing: these become tool results the model can read) ---------


class ToolCallError(AgentkitError):
    """A single tool call failed; the loop reports it to the model as a tool result."""

    def __init__(self, message: str, *, tool_name: str) -> None:
        super().__init__(message)
        self.tool_name = tool_name


class ToolArgumentsError(ToolCallError):
    """The model gave arguments that are not valid JSON or do not match the tool's schema."""


class UnknownToolError(ToolCallError):
    """The model called a tool name the agent does not have."""


class ToolError(ToolCallError):
    """The tool's function raised; the original exception is ``__cause__`` and ``exception``."""

    def __init__(self, message: str, *, tool_name: str, exception: BaseException) -> None:
        super().__init__(message, tool_name=tool_name)
        self.exception = exception


class ToolTimeout(ToolCallError):
    """The tool did not finish within its ``timeout``."""

    def __init__(self, message: str, *, tool_name: str, timeout: float) -> None:
        super().__init__(message, tool_name=tool_name)
        self.timeout = timeout


# --- run outcomes --------------------------------------------------------------------


class RunError(AgentkitError):
    """A run stopped without an output; ``messages`` and ``usage`` tell how far it got."""


class MaxTurnsExceeded(RunError):
    """The run used ``max_turns`` model turns without the model stopping."""


class UsageLimitExceeded(RunError):
    """The next request would break a :class:`~agentkit.UsageLimits` limit."""


class GuardrailTripped(RunError):
    """A guardrail's tripwire stopped the run (see :mod:`agentkit.guardrails`).

    ``guardrail`` is its name, ``kind`` is ``"input"``, ``"output"`` or ``"tool_output"``,
    and ``info`` what it reported; ``messages`` are the messages so far. A tripped input
    guardrail stops the run before any tool has run.
    """

    def __init__(self, message: str, *, guardrail: str, kind: str, info: Any = None) -> None:
        super().__init__(message)
        self.guardrail = guardrail
        self.kind = kind
        self.info = info


class OutputTruncated(RunError):
    """The model stopped with finish reason ``length`` (out of tokens)."""


class ContentFiltered(RunError):
    """The server's content filter stopped the model (finish reason ``content_filter``)."""


class ToolRetriesExceeded(RunError):
    """A tool failed more times in a row than its retry budget allows."""


class RunTimeout(RunError):
    """The run did not finish within ``agent.run(..., timeout=)`` seconds."""


class HookError(RunError):
    """A run hook (:class:`~agentkit.RunHooks`) raised; the run stopped there.

    Hooks observe: catch what can go wrong inside the hook if the run should go on. The
    hook's own exception is the ``__cause__``."""


class NotPending(AgentkitError):
    """A decision (approve, reject, output) names a tool call the run is not waiting for."""


class RunCancelled(RunError):
    """The run was cancelled (``store.cancel_run``) and stopped at a step boundary.

    ``agent.run`` on a thread returns a result with ``status == "cancelled"`` instead of
    raising this; it is seen only by code that drives the loop itself."""


class ToolChoiceIgnored(RunError):
    """The model kept answering with text although ``tool_choice`` required a tool call."""


class OutputValidationError(RunError):
    """The model's final answer did not validate against ``output_type`` after all retries."""


# --- model / backend -----------------------------------------------------------------


class ModelError(AgentkitError):
    """A model backend failed to answer.

    ``requests_answered`` counts the attempts the server did answer (errors included):
    they are added to the run's ``usage.requests``, since they may be billed.
    """

    requests_answered: int = 0


class ModelHTTPError(ModelError):
    """The server answered with an HTTP error status.

    ``status`` is the HTTP status code, ``body`` the server's error body (secrets removed)
    and ``attempts`` how many times agentkit tried before giving up.
    """

    def __init__(self, message: str, *, status: int, body: Any = None, attempts: int = 1) -> None:
        super().__init__(message)
        self.status = status
        self.body = body
        self.attempts = attempts


class AuthenticationError(ModelHTTPError):
    """The server rejected the API key (HTTP 401)."""


class PermissionDenied(ModelHTTPError):
    """The key is valid but not allowed to do this (HTTP 403)."""


class ModelNotFound(ModelHTTPError):
    """The server does not know the model name (HTTP 404)."""


class ContextLengthExceeded(ModelHTTPError):
    """The conversation is longer than the model's context window."""


class RateLimited(ModelHTTPError):
    """HTTP 429 after every retry; ``retry_after`` is the server's hint in seconds, if any."""

    def __init__(
        self,
        message: str,
        *,
        status: int = 429,
        body: Any = None,
        attempts: int = 1,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message, status=status, body=body, attempts=attempts)
        self.retry_after = retry_after


class QuotaExceeded(ModelHTTPError):
    """The account is out of credit (429 ``insufficient_quota``); retrying cannot help."""


class ModelConnectionError(ModelError):
    """The server could not be reached, or did not answer in time, after every retry."""

    def __init__(self, message: str, *, attempts: int = 1) -> None:
        super().__init__(message)
        self.attempts = attempts


# --- testing -------------------------------------------------------------------------


class ModelRequestsBlocked(AgentkitError):
    """A real model request was made where :func:`agentkit.testing.block_model_requests`
    forbids it."""


class CassetteMismatch(AgentkitError):
    """In replay mode a request differed from the recorded one; the message shows the diff."""


# --- threads and stores --------------------------------------------------------------


class NotFound(AgentkitError):
    """No thread or run has the id given; the message says which id and where to get one."""


class ThreadBusy(AgentkitError):
    """The thread already has an active run (``run_id``); wait for it, resume or cancel it."""

    def __init__(self, message: str, *, thread_id: str, run_id: str | None) -> None:
        super().__init__(message)
        self.thread_id = thread_id
        self.run_id = run_id


class IdempotencyConflict(AgentkitError):
    """An idempotency key was submitted again with different arguments (another agent,
    thread or input): it names one run, which keeps its first arguments."""

    def __init__(self, message: str, *, key: str, run_id: str) -> None:
        super().__init__(message)
        self.key = key
        self.run_id = run_id


class RunStatusError(AgentkitError):
    """A run cannot do what was asked in its current ``status`` (e.g. cancel a finished
    run)."""

    def __init__(self, message: str, *, run_id: str, status: str) -> None:
        super().__init__(message)
        self.run_id = run_id
        self.status = status


class StoreError(AgentkitError):
    """A thread store failed; nothing was changed by the failed operation."""


class StoreUnavailable(StoreError):
    """The database is locked by another process for too long, down or unreachable."""


class StoreVersionError(StoreError):
    """The database (or one stored item) was written by a newer agentkit; upgrade it."""


# --- MCP -----------------------------------------------------------------------------


class MCPError(AgentkitError):
    """An MCP server could not be started, reached or understood (``agentkit.mcp``).

    Inside a tool call the same problems come back as an error tool result instead, and the
    next call reconnects.
    """
class DatasetError(ConfigurationError):
    """An eval dataset file cannot be read: the message names the file, the case (or
    line) and what is wrong with it."""


class BatchError(AgentkitError):
    """A batch of the Batch API failed as a whole (validation of its input file, a
    cancel) or cannot be found; ``batch_id`` names it."""

    def __init__(self, message: str, *, batch_id: str | None = None) -> None:
        super().__init__(message)
        self.batch_id = batch_id
