"""Helpers for the MCP tests: real servers, run as real processes."""

from __future__ import annotations

import os
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SDK_SERVER = REPO / "tests" / "mcp_servers" / "sdk_server.py"
EVERYTHING = (
    REPO / "tests" / "npm" / "node_modules" / "@modelcontextprotocol" / "server-everything"
    / "dist" / "index.js"
)  # fmt: skip


def everything_args() -> list[str]:
    """``node`` arguments of the MCP reference server (installed by ``make mcp-servers``)."""
    if not EVERYTHING.is_file():
        pytest.fail(f"{EVERYTHING} is missing: run `make mcp-servers` (npm ci in tests/npm).")
    return [str(EVERYTHING), "stdio"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie counts as dead: it only waits to be reaped)."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def wait_dead(pid: int, timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while alive(pid):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


@contextmanager
def http_server(*command: str, port: int) -> Iterator[str]:
    """Run ``command`` (an MCP server on ``port``) and yield its ``/mcp`` URL once it
    accepts connections."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    with tempfile.TemporaryFile() as log:  # a file, not a pipe: a full pipe would block it
        process = subprocess.Popen(command, env=env, stdout=log, stderr=log, cwd=REPO)
        try:
            deadline = time.monotonic() + 60
            while True:
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                    break
                except OSError:
                    if process.poll() is not None or time.monotonic() > deadline:
                        log.seek(0)
                        raise RuntimeError(f"{command} did not start: {log.read()!r}") from None
                    time.sleep(0.05)
            yield f"http://127.0.0.1:{port}/mcp"
        finally:
            process.terminate()
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
