"""`metabench run --executor dask` against a scheduler that is not there, not a scheduler,
or has no GPU workers: exit 2 in one paragraph, in bounded time, before the run folder
exists (review item 7)."""

from __future__ import annotations

import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

pytest.importorskip("distributed")
from distributed import LocalCluster

from bench.cli import main
from bench.run import dask_cluster as dx


def dask_run(address: str, out: Path, device: str = "cpu") -> list[str]:
    return ["run", "sinusoid-5shot", "--profile", "smoke", "--methods", "scratch",
            "--executor", "dask", "--scheduler", address, "--device", device,
            "--out", str(out), "--no-progress"]  # fmt: skip


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Dashboard(BaseHTTPRequestHandler):
    """What listens on a scheduler's dashboard port: HTTP."""

    def do_GET(self) -> None:
        self.send_response(200)
        self.end_headers()
        self.wfile.write(b"<html>dashboard</html>")

    def log_message(self, *args) -> None:
        pass


def test_nothing_listening_is_refused_at_once_and_writes_nothing(tmp_path, capfd) -> None:
    out = tmp_path / "run"
    address = f"tcp://127.0.0.1:{free_port()}"
    assert main(dask_run(address, out)) == 2
    err = capfd.readouterr().err
    assert err.count("\n") == 1 and "--scheduler" in err and "nothing accepts" in err
    assert not out.exists()


def test_a_port_that_is_not_a_scheduler_is_refused_in_time(tmp_path, capfd, monkeypatch) -> None:
    monkeypatch.setattr(dx, "HANDSHAKE_TIMEOUT_S", 1)
    monkeypatch.setattr(dx, "CONNECT_TIMEOUT_S", 2)
    http = ThreadingHTTPServer(("127.0.0.1", 0), Dashboard)
    threading.Thread(target=http.serve_forever, daemon=True).start()
    silent = socket.create_server(("127.0.0.1", 0))  # accepts, never answers
    try:
        for server in (http.socket, silent):
            out = tmp_path / str(server.getsockname()[1])
            assert main(dask_run(f"tcp://127.0.0.1:{server.getsockname()[1]}", out)) == 2
            err = capfd.readouterr().err
            assert err.count("\n") == 1 and "expected a Dask scheduler" in err, err
            assert "dashboard" in err and not out.exists()
    finally:
        http.shutdown()
        http.server_close()
        silent.close()


def test_cuda_without_gpu_workers_stops_before_the_run_folder(tmp_path, capfd) -> None:
    out = tmp_path / "run"
    with LocalCluster(
        n_workers=1, threads_per_worker=1, processes=False, protocol="tcp", dashboard_address=None
    ) as cluster:
        assert main(dask_run(cluster.scheduler_address, out, device="cuda")) == 2
    err = capfd.readouterr().err
    assert "GPU=1" in err and "Traceback" not in err
    assert not out.exists()
