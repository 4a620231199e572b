"""gunicorn.conf.py: the settings gunicorn really reads, and the sizing rules.

The served app under this file is exercised end to end in test_deploy_nginx.py.
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

from tests.servers import ROOT, clean_environ

CONF = ROOT / "gunicorn.conf.py"
GiB = 1024**3


def printed_config(**env: str) -> dict[str, str]:
    """``gunicorn --print-config`` with this file: what gunicorn itself resolved."""
    done = subprocess.run(
        [sys.executable, "-m", "gunicorn", "-c", str(CONF), "--print-config"],
        cwd=ROOT, env={**clean_environ(), **env}, capture_output=True, text=True, timeout=120,
    )
    assert done.returncode == 0, done.stderr
    settings = {}
    for line in done.stdout.splitlines():
        name, sep, value = line.partition("=")
        if sep:
            settings[name.strip()] = value.strip()
    return settings


@pytest.fixture
def conf(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> ModuleType:
    """The config file as a module; LOOKALIKE_THREADS pinned so it cannot leak out, and
    the metrics folder it sets for gunicorn's workers taken back after the test."""
    monkeypatch.setenv("LOOKALIKE_THREADS", "1")
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path / "prometheus"))
    for name in ("GUNICORN_WORKERS", "GUNICORN_THREADS", "WEB_CONCURRENCY"):
        monkeypatch.delenv(name, raising=False)
    spec = importlib.util.spec_from_file_location("lookalike_gunicorn_conf", CONF)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_gunicorn_reads_the_production_settings() -> None:
    settings = printed_config()
    assert settings["preload_app"] == "False"
    assert settings["worker_class"] == "app.model.gunicorn_worker.MainThreadModelWorker"
    assert settings["control_socket_disable"] == "True"
    assert settings["timeout"] == "120" and settings["graceful_timeout"] == "30"
    assert int(settings["max_requests"]) > 0 and int(settings["max_requests_jitter"]) > 0
    assert settings["accesslog"] == "-"
    assert settings["post_worker_init"] == "<post_worker_init()>"
    assert settings["bind"] == "['127.0.0.1:8000']"


def test_environment_overrides_win() -> None:
    settings = printed_config(GUNICORN_WORKERS="3", GUNICORN_THREADS="8",
                              GUNICORN_BIND="0.0.0.0:8000", GUNICORN_MAX_REQUESTS="0")
    assert (settings["workers"], settings["threads"]) == ("3", "8")
    assert settings["bind"] == "['0.0.0.0:8000']"
    assert (settings["max_requests"], settings["max_requests_jitter"]) == ("0", "0")


def test_the_model_size_is_read_from_its_weights(conf: ModuleType, tiny_model_dir: Path) -> None:
    weights = sum(p.stat().st_size for p in tiny_model_dir.glob("*.safetensors"))
    assert conf.model_bytes(str(tiny_model_dir)) == weights
    assert conf.worker_memory(str(tiny_model_dir)) == conf.RUNTIME_BYTES + 2 * weights
    assert conf.model_bytes("nobody/not-downloaded") is None


@pytest.mark.parametrize(("cpus", "memory", "workers", "torch_threads"), [
    (2, 24 * GiB, 1, 2),     # this machine: one worker, torch on both cores
    (16, 64 * GiB, 4, 4),    # one worker per 4 cores
    (16, 4 * GiB, 2, 8),     # memory allows only two copies of the model
    (64, 1 * GiB, 1, 64),    # never fewer than one
])
def test_workers_follow_cores_and_memory(conf, monkeypatch, cpus, memory, workers,  # type: ignore[no-untyped-def]
                                         torch_threads) -> None:
    monkeypatch.setattr(conf, "available_cpus", lambda: cpus)
    monkeypatch.setattr(conf, "available_memory", lambda: memory)
    monkeypatch.setattr(conf, "on_gpu", lambda: False)
    monkeypatch.setenv("LOOKALIKE_WORKER_MEMORY_MB", "1200")
    plan = conf.plan()
    assert (plan["workers"], plan["torch_threads"], plan["threads"]) == (workers, torch_threads, 4)


def test_one_worker_on_a_gpu(conf, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setattr(conf, "available_cpus", lambda: 32)
    monkeypatch.setattr(conf, "available_memory", lambda: 128 * GiB)
    monkeypatch.setenv("LOOKALIKE_DEVICE", "cuda:0")
    assert conf.plan()["workers"] == 1


def test_workers_creating_the_first_collection_together_agree_on_one(lite_server: str) -> None:
    """Several workers warm up at once on an empty gallery: one collection, no error."""
    import threading
    import uuid

    from app.vectors.connect import open_client
    from app.vectors.records import ModelStamp
    from app.vectors.store import VectorStore

    alias = f"t{uuid.uuid4().hex[:12]}"
    start = threading.Barrier(3)
    outcomes: list[str] = []

    def worker() -> None:
        store = VectorStore(open_client(lite_server, timeout=10)[0], alias, lite=True)
        start.wait()
        try:
            outcomes.append(store.ensure(ModelStamp("tiny", "f00d", 8)))
        except Exception as error:  # noqa: BLE001  (the outcome is what the test checks)
            outcomes.append(type(error).__name__)

    threads = [threading.Thread(target=worker) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    collections = open_client(lite_server)[0].list_collections()
    created = [c for c in collections if c.startswith(alias)]
    assert len(set(outcomes)) == 1 and outcomes[0] in created
    assert len(created) == 1
