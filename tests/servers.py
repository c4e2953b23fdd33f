"""Throw-away PostgreSQL and Redis servers for a test run, on free ports, from Debian's packages.

Nothing here touches a server the machine already runs: each run gets its own data directory
and port, and everything goes when the run ends. initdb refuses to run as root, so as root the
cluster belongs to the `postgres` system user (Debian's package creates it).
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


class ServerMissing(RuntimeError):
    """The server's binaries are not installed."""


def free_port() -> int:
    """A TCP port nothing listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _postgres_bin(name: str) -> str:
    found = shutil.which(name) or next(
        iter(sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"), reverse=True)), None
    )
    if found is None:
        raise ServerMissing(f"{name} not found: apt-get install postgresql")
    return found


def _wait_for_port(port: int, process: subprocess.Popen[bytes], what: str) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{what} exited with {process.returncode}")
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise RuntimeError(f"{what} did not listen on {port} within 30 s")


@contextmanager
def postgres_server() -> Iterator[str]:
    """Run a fresh PostgreSQL cluster; yield its URL (superuser `postgres`, no password)."""
    initdb, postgres = _postgres_bin("initdb"), _postgres_bin("postgres")
    as_root = os.geteuid() == 0
    run_as = ["runuser", "-u", "postgres", "--"] if as_root else []
    with tempfile.TemporaryDirectory(prefix="mjbot-pg-") as home:
        data = Path(home) / "data"
        if as_root:
            shutil.chown(home, "postgres")
        subprocess.run(
            [*run_as, initdb, "-D", str(data), "-U", "postgres", "--auth=trust", "-E", "UTF8"],
            check=True,
            capture_output=True,
        )
        port = free_port()
        # Durability is not what a throw-away cluster is for: no fsync makes it fast.
        process = subprocess.Popen(
            [
                *run_as,
                postgres,
                "-D",
                str(data),
                "-p",
                str(port),
                "-k",
                home,
                "-c",
                "listen_addresses=127.0.0.1",
                "-c",
                "fsync=off",
                "-c",
                "synchronous_commit=off",
                "-c",
                "full_page_writes=off",
                "-c",
                "max_connections=300",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            _wait_for_port(port, process, "postgres")
            yield f"postgresql://postgres@127.0.0.1:{port}"
        finally:
            process.terminate()
            process.wait(timeout=30)


@contextmanager
def redis_server() -> Iterator[str]:
    """Run a fresh redis-server without persistence; yield its URL."""
    binary = shutil.which("redis-server")
    if binary is None:
        raise ServerMissing("redis-server not found: apt-get install redis-server")
    port = free_port()
    with tempfile.TemporaryDirectory(prefix="mjbot-redis-") as home:
        process = subprocess.Popen(
            [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--dir", home],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            _wait_for_port(port, process, "redis-server")
            yield f"redis://127.0.0.1:{port}/0"
        finally:
            process.terminate()
            process.wait(timeout=30)
