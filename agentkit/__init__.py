"""agentkit: a small, fast, typed framework for tool-using agents.

Decorate Python functions with :func:`tool`, give them to an :class:`Agent`, and
``run`` it against any OpenAI-compatible model or the bundled offline model.
"""

from __future__ import annotations

from agentkit._version import __version__
from agentkit.agent import Agent, RunOptions
from agentkit.errors import (
    AgentkitError,
    AuthenticationError,
    CassetteMismatch,
    ConfigurationError,
    ContentFiltered,
    ContextLengthExceeded,
    LocalModelCorrupted,
    LocalModelNotFound,
    MaxTurnsExceeded,
    MissingAPIKey,
    ModelConnectionError,
    ModelDownloadError,
    ModelError,
    ModelHTTPError,
    ModelNotFound,
    ModelRequestsBlocked,
    OutputTruncated,
    OutputValidationError,
    PermissionDenied,
    QuotaExceeded,
    RateLimited,
    RunError,
    RunTimeout,
    ToolArgumentsError,
    ToolCallError,
    ToolChoiceIgnored,
    ToolDefinitionError,
    ToolError,
    ToolRetriesExceeded,
    ToolTimeout,
    UnknownToolError,
    UsageLimitExceeded,
)
from agentkit.messages import Message, ToolCall
from agentkit.models.base import TextDelta
from agentkit.run import (
    ModelResponseFinished,
    RunEvent,
    RunFinished,
    RunResult,
    RunState,
    ToolCallStarted,
    ToolResultReceived,
)
from agentkit.settings import ModelSettings
from agentkit.tools import RunContext, Tool, ToolResult, tool
from agentkit.usage import Usage, UsageLimits

__all__ = [
    "Agent",
    "AgentkitError",
    "AuthenticationError",
    "CassetteMismatch",
    "ConfigurationError",
    "ContentFiltered",
    "ContextLengthExceeded",
    "LocalModelCorrupted",
    "LocalModelNotFound",
    "MaxTurnsExceeded",
    "Message",
    "MissingAPIKey",
    "ModelConnectionError",
    "ModelDownloadError",
    "ModelError",
    "ModelHTTPError",
    "ModelNotFound",
    "ModelRequestsBlocked",
    "ModelResponseFinished",
    "ModelSettings",
    "OutputTruncated",
    "OutputValidationError",
    "PermissionDenied",
    "QuotaExceeded",
    "RateLimited",
    "RunContext",
    "RunError",
    "RunEvent",
    "RunFinished",
    "RunOptions",
    "RunResult",
    "RunState",
    "RunTimeout",
    "TextDelta",
    "Tool",
    "ToolArgumentsError",
    "ToolCall",
    "ToolCallError",
    "ToolCallStarted",
    "ToolChoiceIgnored",
    "ToolDefinitionError",
    "ToolError",
    "ToolResult",
    "ToolResultReceived",
    "ToolRetriesExceeded",
    "ToolTimeout",
    "UnknownToolError",
    "Usage",
    "UsageLimitExceeded",
    "UsageLimits",
    "__version__",
    "tool",
]
