"""``zoneout serve`` as a child process on a loopback port: what the tests, the benchmarks and the soak
run drive with real HTTP clients (the openai SDK, schemathesis, a browser, httpx).

    with LocalServer(model_base, max_queue=1000) as server:
        httpx.get(server.url + "/v1/models")
        server.rss_bytes()  # the serving process's resident memory
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on (now)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ServerFailedError(RuntimeError):
    """The server exited, or did not become healthy or stop in time; the message ends with its log."""


class LocalServer:
    """``zoneout serve --model-base MODEL_BASE`` on a free loopback port, started and healthy on return.

    Args:
        model_base: the folder of models to serve (MODEL_BASE/NAME/VERSION/).
        startup_seconds: how long to wait for ``/health`` to answer 200.
        extra_args: more ``zoneout serve`` flags (e.g. ``["--no-batching"]``).
        **settings: service settings, passed as ``ZONEOUT_<NAME>`` environment variables
            (``max_queue=1000`` -> ``ZONEOUT_MAX_QUEUE=1000``).

    Raises:
        ServerFailedError: the process exited or did not become healthy in ``startup_seconds``.

    Everything the server prints goes to a temporary file (``log()``), never a pipe that a long run
    could fill.
    """

    def __init__(self, model_base, startup_seconds: float = 120, extra_args=(), **settings):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        environ = {**os.environ, **{f"ZONEOUT_{k.upper()}": str(v) for k, v in settings.items()}}
        argv = [sys.executable, "-m", "tf_zoneout_train.cli", "serve", "--model-base", str(model_base)]
        argv += ["--port", str(self.port), *extra_args]
        # The log file lives as long as the server, beyond this constructor: closed by stop().
        self._log = tempfile.NamedTemporaryFile(  # noqa: SIM115
            "w+", prefix="zoneout-serve-", suffix=".log", delete=False
        )
        self._final_log: str | None = None
        self.process = subprocess.Popen(argv, env=environ, stdout=self._log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + startup_seconds
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise ServerFailedError(f"the server exited with {self.process.returncode}:\n{self.log()}")
            try:
                if httpx.get(self.url + "/health", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.3)
        self.process.kill()
        raise ServerFailedError(f"the server was not healthy within {startup_seconds} s:\n{self.log()}")

    @property
    def pid(self) -> int:
        return self.process.pid

    def rss_bytes(self) -> int:
        """The serving process's resident set size now (Linux: /proc/PID/status VmRSS)."""
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
        raise ServerFailedError("no VmRSS in /proc/PID/status")

    def log(self, last_chars: int = 3000) -> str:
        """The end of what the server has printed so far."""
        return Path(self._log.name).read_text(errors="replace")[-last_chars:]

    def stop(self, grace_seconds: float = 60) -> str:
        """SIGTERM, then at most ``grace_seconds`` for the graceful shutdown; returns the whole log
        (again on a second call).

        Raises:
            ServerFailedError: it did not stop in time (it is killed; the message ends with its log).
        """
        if self._final_log is not None:
            return self._final_log
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=grace_seconds)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
                raise ServerFailedError(
                    f"the server did not stop within {grace_seconds} s of SIGTERM; "
                    f"its log ends:\n{self.log()}"
                ) from None
        self._final_log = Path(self._log.name).read_text(errors="replace")
        self._log.close()
        Path(self._log.name).unlink(missing_ok=True)
        return self._final_log

    def __enter__(self) -> LocalServer:
        return self

    def __exit__(self, *exc_info) -> None:
        self.stop()
