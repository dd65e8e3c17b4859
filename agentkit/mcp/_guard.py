"""Run an MCP stdio server and take its whole process group down when it or we end.

``MCPServer.stdio`` starts this file as a script (``python -I -S _guard.py PARENT CMD...``,
so nothing of agentkit is imported and it starts in milliseconds). The MCP SDK starts it
as the leader of a new process group; the real server inherits its stdin and stdout, so
the protocol bytes never pass through here.

Why it exists: the SDK kills the group only when a close times out, and nobody kills it
when the parent process crashes. A server that forks (``npx`` -> ``node``, a shell
script) would then leave orphans. This guard waits for either the server or the parent
to die, then SIGKILLs its group, itself included.
"""

import contextlib
import os
import select
import signal
import sys
import time


def _kill_group() -> None:
    if os.getpgid(0) == os.getpid():  # only a group this guard leads
        os.killpg(0, signal.SIGKILL)


def _wait(parent: int, child: int) -> None:
    try:
        parent_fd = os.pidfd_open(parent)
        child_fd = os.pidfd_open(child)
    except (AttributeError, OSError):  # no pidfd (old kernel, macOS): poll
        while os.getppid() == parent and os.waitpid(child, os.WNOHANG) == (0, 0):
            time.sleep(0.2)
        return
    if os.getppid() != parent:  # the parent died before its pidfd was opened
        return
    select.select([parent_fd, child_fd], [], [])


def main(argv: list[str]) -> int:
    parent, command = int(argv[1]), argv[2:]
    try:
        child = os.posix_spawnp(command[0], command, os.environ)
    except OSError as exc:
        sys.stderr.write(f"agentkit: cannot start the MCP server {command[0]!r}: {exc}\n")
        return 127
    _wait(parent, child)
    with contextlib.suppress(ChildProcessError):  # a container's init may never reap it
        os.waitpid(child, os.WNOHANG)
    _kill_group()
    return 0  # not reached when the group was killed


if __name__ == "__main__":
    sys.exit(main(sys.argv))
