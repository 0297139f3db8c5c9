"""`distillguard serve` end to end: SIGKILL mid-traffic, restart, every acknowledged exchange stored exactly once."""

from __future__ import annotations

import signal
import threading
import time

import duckdb
import httpx
from typer.testing import CliRunner

from distillguard.cli import app as cli_app
from tests.gateway.factories import auth, chat, free_port, start_process, wait_http, write_keys_file


def test_serve_help_lists_the_options():
    result = CliRunner().invoke(cli_app, ["serve", "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0
    for option in ("--upstream", "--keys", "--store", "--wal-dir", "--policy", "--redis-url", "--decisions-from"):
        assert option in result.output


def test_serve_without_keys_is_a_clear_error(tmp_path):
    result = CliRunner().invoke(cli_app, ["serve", "--store", str(tmp_path / "s.duckdb")])
    assert result.exit_code == 2 and "--keys" in result.output


def _traffic(url: str, acked: list[str], stop: threading.Event, worker: int) -> None:
    """Sequential requests; an exchange counts as acknowledged once its whole answer arrived."""
    with httpx.Client(base_url=url, timeout=5) as c:
        i = 0
        while not stop.is_set():
            i += 1
            stream = (i + worker) % 3 == 0
            try:
                r = c.post("/v1/chat/completions", json=chat(f"worker {worker} request {i}", stream=stream), headers=auth())
                if r.status_code == 200 and (not stream or r.text.rstrip().endswith("[DONE]")):
                    acked.append(r.headers["x-distillguard-event"])
            except httpx.HTTPError:
                if stop.is_set():
                    return
                time.sleep(0.01)


def test_sigkill_mid_traffic_loses_no_acknowledged_exchange(tmp_path):
    up_port, gw_port = free_port(), free_port()
    keys = write_keys_file(tmp_path / "keys.yml")
    config = tmp_path / "gateway.yml"
    # a long flush period: at the kill, the acknowledged records are in the WAL only
    config.write_text(f"upstream_url: http://127.0.0.1:{up_port}/v1\nkeys_file: {keys}\nstore_path: {tmp_path / 'gw.duckdb'}\n"
                      f"wal_dir: {tmp_path / 'wal'}\nport: {gw_port}\nflush_interval_s: 30.0\nflush_batch: 100000\n")  # fmt: skip
    env = {"DISTILLGUARD_SECRET": "test-secret"}
    upstream = start_process(["-m", "distillguard.bench.fake_upstream", "--port", str(up_port)])
    gw = None
    try:
        wait_http(f"http://127.0.0.1:{up_port}/v1/models", proc=upstream)
        gw = start_process(["-m", "distillguard", "serve", "--config", str(config)], env, tmp_path / "gw1.log")
        url = f"http://127.0.0.1:{gw_port}"
        wait_http(url + "/healthz", timeout=60, proc=gw)
        acked: list[str] = []
        stop = threading.Event()
        workers = [threading.Thread(target=_traffic, args=(url, acked, stop, w)) for w in range(4)]
        for w in workers:
            w.start()
        # kill once enough exchanges were acknowledged (not after a fixed time: on a loaded machine a
        # second may hold a handful), well inside the first flush period
        deadline = time.monotonic() + 30
        while len(acked) <= 50 and time.monotonic() < deadline and gw.poll() is None:
            time.sleep(0.05)
        gw.send_signal(signal.SIGKILL)
        gw.wait(10)
        stop.set()
        for w in workers:
            w.join(10)
        assert len(acked) > 50, (tmp_path / "gw1.log").read_text()
        assert list((tmp_path / "wal").glob("wal-*")), "the kill should leave write-ahead segments behind"

        gw = start_process(["-m", "distillguard", "serve", "--config", str(config)], env, tmp_path / "gw2.log")
        wait_http(url + "/healthz", timeout=60, proc=gw)
        with httpx.Client(base_url=url) as c:
            assert c.post("/v1/chat/completions", json=chat("after the restart"), headers=auth()).status_code == 200
        gw.send_signal(signal.SIGTERM)  # graceful: the queue is stored before exit
        assert gw.wait(30) is not None
        gw = None
    finally:
        for proc in (gw, upstream):
            if proc is not None and proc.poll() is None:
                proc.kill()
                proc.wait(10)
    con = duckdb.connect(str(tmp_path / "gw.duckdb"), read_only=True)
    stored = [r[0] for r in con.execute("SELECT event_id FROM events").fetchall()]
    logged = con.execute("SELECT count(*) FROM gateway_log").fetchall()[0][0]
    con.close()
    assert len(stored) == len(set(stored)) == logged
    missing = set(acked) - set(stored)
    assert not missing, f"{len(missing)} of {len(acked)} acknowledged exchanges lost"
    assert len(stored) >= len(acked) + 1
    assert list((tmp_path / "wal").glob("wal-*")) == []  # clean shutdown: everything stored, nothing to replay
