"""A real Apache Kafka broker: one KRaft node (broker + controller) run from Maven jars.

Usage::

    broker = KafkaBroker(Path(".services/kafka"))
    broker.start()            # format once, spawn, wait until it answers requests
    print(broker.bootstrap)   # 127.0.0.1:<port>
    broker.restart()          # same ports, same data
    broker.stop()

Everything lives in the broker's folder: ``server.properties``, ``data/`` (the log dirs),
``kafka.log``, ``kafka.pid`` and ``state.json`` (ports, cluster id). Another process can
build a ``KafkaBroker`` on the same folder and control the same broker.
"""
from __future__ import annotations

import base64
import os
import shutil
import signal
import socket
import struct
import subprocess
import time
import uuid
from collections.abc import Mapping
from pathlib import Path

from . import jars, ports, procs
from .errors import NotConfiguredError, ServiceError, StartError, ToolMissingError

HOST = ports.HOST
_MAIN_CLASS = "kafka.Kafka"
_PORT_CONFLICT = ("Address already in use", "BindException")


def broker_properties(port: int, controller_port: int, data_dir: Path) -> dict[str, str]:
    """server.properties for a single combined node, tuned for fast tests on small machines."""
    return {
        "process.roles": "broker,controller",
        "node.id": "1",
        "controller.quorum.voters": f"1@{HOST}:{controller_port}",
        "listeners": f"PLAINTEXT://{HOST}:{port},CONTROLLER://{HOST}:{controller_port}",
        "advertised.listeners": f"PLAINTEXT://{HOST}:{port}",
        "controller.listener.names": "CONTROLLER",
        "inter.broker.listener.name": "PLAINTEXT",
        "listener.security.protocol.map": "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
        "log.dirs": str(data_dir),
        # One node: every internal topic has one replica.
        "offsets.topic.replication.factor": "1",
        "offsets.topic.num.partitions": "1",
        "transaction.state.log.replication.factor": "1",
        "transaction.state.log.min.isr": "1",
        "transaction.state.log.num.partitions": "1",
        "share.coordinator.state.topic.replication.factor": "1",
        "share.coordinator.state.topic.min.isr": "1",
        "share.coordinator.state.topic.num.partitions": "1",
        # Fast tests, small footprint.
        "group.initial.rebalance.delay.ms": "0",
        "num.network.threads": "2",
        "num.io.threads": "2",
        "num.partitions": "1",
        "log.cleaner.dedupe.buffer.size": "1048577",  # the default takes 128 MiB of heap
    }


def _cluster_id() -> str:
    """What StorageTool random-uuid prints: 16 random bytes, URL-safe base64, no padding."""
    while True:
        text = base64.urlsafe_b64encode(uuid.uuid4().bytes).rstrip(b"=").decode()
        if not text.startswith("-"):  # Kafka's Uuid.randomUuid() avoids these too
            return text


def api_versions_ok(host: str, port: int, timeout: float = 2.0) -> bool:
    """True if the broker answers a Kafka ApiVersions request (protocol-level liveness)."""
    client_id = b"clazzify-localservices"
    correlation = 0x5EED
    body = struct.pack(">hhih", 18, 0, correlation, len(client_id)) + client_id
    try:
        with socket.create_connection((host, port), timeout=timeout) as sock:
            sock.sendall(struct.pack(">i", len(body)) + body)
            header = _recv_exact(sock, 4)
            (size,) = struct.unpack(">i", header)
            reply = _recv_exact(sock, min(size, 1 << 16))
    except OSError:
        return False
    # Correlation id first; the error code may say UNSUPPORTED_VERSION, which still proves a
    # working request path.
    return len(reply) >= 6 and struct.unpack(">i", reply[:4])[0] == correlation


def _recv_exact(sock: socket.socket, n: int) -> bytes:
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            raise OSError("connection closed")
        data += chunk
    return data


def metadata_ok(bootstrap: str, timeout: float = 5.0) -> bool:
    """True if a real client gets cluster metadata naming a broker (skipped without confluent_kafka)."""
    try:
        from confluent_kafka.admin import AdminClient
    except ImportError:
        return True
    admin = AdminClient({"bootstrap.servers": bootstrap, "log_level": 3})
    try:
        return bool(admin.list_topics(timeout=timeout).brokers)
    except Exception:  # KafkaException on timeout: not ready yet
        return False


def find_java() -> str:
    java_home = os.environ.get("JAVA_HOME")
    if java_home and os.access(Path(java_home) / "bin" / "java", os.X_OK):
        return str(Path(java_home) / "bin" / "java")
    java = shutil.which("java")
    if java is None:
        raise ToolMissingError("java (17 or newer) is needed to run the Kafka broker")
    return java


class KafkaBroker:
    """Control of one local broker living in `workdir`; no I/O happens until a method is called."""

    def __init__(
        self,
        workdir: Path | str,
        *,
        lib_dir: Path | str | None = None,
        overrides: Mapping[str, str] | None = None,
        heap: tuple[str, str] = ("256m", "512m"),
    ) -> None:
        self.workdir = Path(workdir).absolute()
        self.lib_dir = Path(lib_dir).absolute() if lib_dir else self.workdir.parent / "kafka-lib"
        self.overrides = dict(overrides or {})
        self.heap = heap
        self.properties_path = self.workdir / "server.properties"
        self.data_dir = self.workdir / "data"
        self.log_path = self.workdir / "kafka.log"
        self.pid_path = self.workdir / "kafka.pid"
        self.state_path = self.workdir / "state.json"
        self._child: subprocess.Popen | None = None
        self._log_offset = 0

    # ----------------------------------------------------------------- endpoints
    @property
    def port(self) -> int:
        state = procs.load_json(self.state_path)
        if "port" not in state:
            raise NotConfiguredError(f"no Kafka broker was ever started in {self.workdir}")
        return int(state["port"])

    @property
    def bootstrap(self) -> str:
        """`127.0.0.1:<port>`, stable across stop/start/restart."""
        return f"{HOST}:{self.port}"

    @property
    def pid(self) -> int | None:
        """The broker's process id if it is running, else None."""
        if self._child is not None and self._child.poll() is None:
            return self._child.pid
        pid = procs.read_pid(self.pid_path)
        if pid and procs.alive(pid) and self._is_ours(pid):
            return pid
        # No (or a stale) pid file: look for a broker on our config anyway, so that
        # nothing ever runs unseen and unstoppable.
        found = procs.find(_MAIN_CLASS, str(self.properties_path))
        return found[0] if found else None

    def _is_ours(self, pid: int) -> bool:
        argv = procs.argv_of(pid, settle=True)
        return _MAIN_CLASS in argv and str(self.properties_path) in argv

    def is_running(self) -> bool:
        return self.pid is not None

    def is_ready(self) -> bool:
        """True if running and answering Kafka requests."""
        if not self.is_running():
            return False
        return api_versions_ok(HOST, self.port) and metadata_ok(self.bootstrap)

    # ----------------------------------------------------------------- lifecycle
    def start(self, timeout: float = 120.0) -> "KafkaBroker":
        """Start (formatting storage on first use) and wait until ready; no-op if running."""
        deadline = time.monotonic() + timeout
        for _ in range(4):
            self.launch()
            try:
                self.wait_ready(deadline - time.monotonic())
                return self
            except StartError:
                state = procs.load_json(self.state_path)
                retry = (
                    not self.is_running()
                    and not state.get("ever_ready")
                    and any(s in procs.read_since(self.log_path, self._log_offset) for s in _PORT_CONFLICT)
                    and deadline - time.monotonic() > 15
                )
                if not retry:
                    self.stop(timeout=10)
                    raise
                # A port taken between picking and binding (another instance): pick again.
                state.pop("port", None)
                state.pop("controller_port", None)
                procs.save_json(self.state_path, state)
        raise StartError("Kafka broker: ports kept colliding; giving up")

    def launch(self) -> None:
        """Spawn the broker without waiting for it (format first if the data dir is new)."""
        if self.is_running():
            return
        jars.ensure_kafka_jars(self.lib_dir)
        java = find_java()
        self.workdir.mkdir(parents=True, exist_ok=True)
        state = procs.load_json(self.state_path)
        if "port" not in state:
            state["port"] = ports.pick_free_port()
            state["controller_port"] = ports.pick_free_port(exclude=[state["port"]])
        state.setdefault("cluster_id", _cluster_id())
        procs.save_json(self.state_path, state)
        props = broker_properties(state["port"], state["controller_port"], self.data_dir)
        props.update(self.overrides)
        procs.write_atomic(
            self.properties_path,
            "# Written by localservices/broker.py; rewritten on every start.\n"
            + "".join(f"{k}={v}\n" for k, v in props.items()),
        )
        classpath = f"{self.lib_dir}/*"  # Java, not a shell, expands the '*'
        if not (self.data_dir / "meta.properties").exists():
            self._format(java, classpath, state["cluster_id"])
        self._log_offset = self.log_path.stat().st_size if self.log_path.exists() else 0
        argv = [
            java, f"-Xms{self.heap[0]}", f"-Xmx{self.heap[1]}",
            "-XX:+UseG1GC", "-XX:MaxGCPauseMillis=20", "-XX:InitiatingHeapOccupancyPercent=35",
            "-XX:+ExplicitGCInvokesConcurrent", "-Djava.awt.headless=true",
            "-Dorg.slf4j.simpleLogger.showDateTime=true",
            "-Dorg.slf4j.simpleLogger.dateTimeFormat=yyyy-MM-dd'T'HH:mm:ss.SSS",
            "-Dorg.slf4j.simpleLogger.log.kafka.request.logger=warn",
            "-Dorg.slf4j.simpleLogger.log.state.change.logger=warn",
            "-cp", classpath, _MAIN_CLASS, str(self.properties_path),
        ]
        self._child = procs.spawn_daemon(argv, self.log_path, cwd=self.workdir)
        procs.write_atomic(self.pid_path, f"{self._child.pid}\n")

    def _format(self, java: str, classpath: str, cluster_id: str) -> None:
        cmd = [
            java, "-Xmx256m", "-cp", classpath, "kafka.tools.StorageTool", "format",
            "-t", cluster_id, "-c", str(self.properties_path), "--ignore-formatted",
        ]
        done = subprocess.run(
            cmd, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=180, cwd=self.workdir
        )
        if done.returncode != 0:
            raise StartError(f"Kafka StorageTool format failed:\n{(done.stdout + done.stderr)[-4000:]}")

    def wait_ready(self, timeout: float = 120.0) -> None:
        """Wait until the broker answers; raise StartError with its log tail if it dies or stalls."""
        deadline = time.monotonic() + max(timeout, 0.0)
        while True:
            pid = self.pid
            if pid is None:
                raise StartError(
                    f"Kafka broker exited during start-up; from {self.log_path}:\n"
                    + procs.excerpt(self.log_path, self._log_offset)
                )
            if ports.tcp_open(HOST, self.port) and api_versions_ok(HOST, self.port) and metadata_ok(self.bootstrap):
                state = procs.load_json(self.state_path)
                if not state.get("ever_ready"):
                    state["ever_ready"] = True
                    procs.save_json(self.state_path, state)
                return
            if time.monotonic() >= deadline:
                raise StartError(
                    f"Kafka broker not ready within {timeout:.0f} s; from {self.log_path}:\n"
                    + procs.excerpt(self.log_path, self._log_offset)
                )
            time.sleep(0.25)

    def stop(self, timeout: float = 60.0) -> bool:
        """Controlled shutdown (SIGTERM), SIGKILL after `timeout`. False if it was not running."""
        pid = self.pid
        if pid is None:
            self.pid_path.unlink(missing_ok=True)
            return False
        procs.terminate(pid, timeout, self._child)
        self.pid_path.unlink(missing_ok=True)
        return True

    def kill(self) -> bool:
        """Crash the broker (SIGKILL): no controlled shutdown, data recovered on next start."""
        pid = self.pid
        if pid is None:
            return False
        procs.kill(pid, self._child)
        self.pid_path.unlink(missing_ok=True)
        return True

    def restart(self, timeout: float = 120.0) -> "KafkaBroker":
        """Stop and start again on the same ports with the same data."""
        self.stop()
        return self.start(timeout)

    def pause(self) -> None:
        """Freeze the broker (SIGSTOP): connections stay open but nothing answers."""
        self._signal(signal.SIGSTOP)

    def resume(self) -> None:
        """Undo pause() (SIGCONT)."""
        self._signal(signal.SIGCONT)

    def _signal(self, sig: signal.Signals) -> None:
        pid = self.pid
        if pid is None:
            raise ServiceError("Kafka broker is not running")
        os.kill(pid, sig)

    def purge(self) -> None:
        """Stop and delete the broker's folder (data, config, log); keeps the jar cache."""
        self.stop()
        shutil.rmtree(self.workdir, ignore_errors=True)
