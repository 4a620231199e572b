"""gunicorn settings for Lookalike: ``gunicorn -c gunicorn.conf.py wsgi:app``.

Sizing comes from the machine (CPU affinity and cgroup quota, available memory
and cgroup limit) and the model's size on disk, unless overridden:

- ``workers``: one per 4 usable cores, and no more than fit in memory, since
  each worker holds its own copy of the model (2 x its weights + ~600 MiB of
  runtime; ``LOOKALIKE_WORKER_MEMORY_MB`` overrides the estimate). One worker on
  a GPU: a second would only queue on the same device.
- ``threads``: 4 per worker (gthread), so thumbnails, pages and uploads are
  served while a search runs. The model itself runs on each worker's main
  thread (app/model/gunicorn_worker.py; docs/performance.md says why).
- torch threads per worker: usable cores / workers, passed to the app as
  ``LOOKALIKE_THREADS`` unless that is set, so workers do not oversubscribe.

Overrides: ``GUNICORN_WORKERS`` (or ``WEB_CONCURRENCY``), ``GUNICORN_THREADS``,
``GUNICORN_BIND``, ``GUNICORN_TIMEOUT``, ``GUNICORN_MAX_REQUESTS``,
``GUNICORN_FORWARDED_ALLOW_IPS``, and any gunicorn flag in ``GUNICORN_CMD_ARGS``
(read by gunicorn itself, over this file).

No ``preload_app``: torch models and gRPC channels must be created after the
fork, in each worker. ``post_worker_init`` loads the model there, and reaches
Milvus, before the worker accepts its first connection.

Milvus Lite allows one process per database. With the embedded default
(``LOOKALIKE_MILVUS_URI`` empty or a path) the app does not open the database
in the workers: the first process starts a shared ``milvus-lite server`` on a
loopback port (app/vectors/lite_server.py) and every worker and CLI command connects
to it, so several workers work there too.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from app.config import DEFAULT_MODEL
from app.model.cpus import available_cpus

MiB = 1024 * 1024
RUNTIME_BYTES = 600 * MiB  # torch + transformers + Flask + gRPC, per worker
UNKNOWN_MODEL_BYTES = 1024 * MiB  # a hub model not downloaded yet
WEIGHT_SUFFIXES = {".safetensors", ".bin", ".pt", ".pth", ".onnx"}
CORES_PER_WORKER = 4
MEMORY_HEADROOM = 0.75  # leave a quarter for Milvus Lite, page cache, spikes


def _env_int(name: str, default: int | None = None) -> int | None:
    value = os.environ.get(name, "").strip()
    return int(value) if value else default


def available_memory() -> int | None:
    """Bytes free for new processes: MemAvailable, capped by a cgroup limit."""
    limits = []
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                limits.append(int(line.split()[1]) * 1024)
    except (OSError, ValueError):
        pass
    for path in ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"):
        try:
            text = Path(path).read_text().strip()
        except OSError:
            continue
        if text.isdigit() and int(text) < 1 << 60:
            limits.append(int(text))
    return min(limits) if limits else None


def model_bytes(model: str) -> int | None:
    """Size of a model's weights: a local directory, or a hub id in the HF cache."""
    root = Path(model).expanduser()
    if not root.is_dir():
        hf_home = Path(os.environ.get("HF_HOME", "~/.cache/huggingface")).expanduser()
        hub = Path(os.environ.get("HF_HUB_CACHE", hf_home / "hub"))
        root = hub / f"models--{model.replace('/', '--')}" / "snapshots"
    if not root.is_dir():
        return None
    per_folder: dict[Path, int] = {}
    for path in root.rglob("*"):
        if path.suffix in WEIGHT_SUFFIXES and path.is_file():
            per_folder[path.parent] = per_folder.get(path.parent, 0) + path.stat().st_size
    return max(per_folder.values(), default=None)


def worker_memory(model: str) -> int:
    override = _env_int("LOOKALIKE_WORKER_MEMORY_MB")
    if override:
        return override * MiB
    weights = model_bytes(model)
    return RUNTIME_BYTES + 2 * (weights if weights is not None else UNKNOWN_MODEL_BYTES)


def on_gpu() -> bool:
    device = os.environ.get("LOOKALIKE_DEVICE", "").strip().strip('"')
    if device:
        return device.startswith("cuda")
    return Path("/dev/nvidia0").exists()


def plan() -> dict[str, Any]:
    """Workers, threads and torch threads for this machine and model."""
    cpus = available_cpus()
    model = os.environ.get("LOOKALIKE_MODEL", DEFAULT_MODEL).strip('"')
    per_worker = worker_memory(model)
    memory = available_memory()
    by_cpu = max(1, cpus // CORES_PER_WORKER)
    by_memory = max(1, int(memory * MEMORY_HEADROOM) // per_worker) if memory else by_cpu
    auto = 1 if on_gpu() else min(by_cpu, by_memory)
    workers = _env_int("GUNICORN_WORKERS") or _env_int("WEB_CONCURRENCY") or auto
    return {
        "workers": workers,
        "threads": _env_int("GUNICORN_THREADS", 4),
        "torch_threads": max(1, cpus // workers),
        "cpus": cpus,
        "memory_mib": memory // MiB if memory else None,
        "worker_mib": per_worker // MiB,
    }


PLAN = plan()
# Passed to each worker's app (Config.THREADS); an explicit setting wins.
os.environ.setdefault("LOOKALIKE_THREADS", str(PLAN["torch_threads"]))

wsgi_app = "wsgi:app"
bind = os.environ.get("GUNICORN_BIND", "127.0.0.1:8000").split(",")
workers = PLAN["workers"]
threads = PLAN["threads"]
worker_class = "app.model.gunicorn_worker.MainThreadModelWorker"
preload_app = False
# A search is one model call: seconds at most on a slow CPU. gthread workers
# heartbeat from their main loop, so a slow request does not trip this.
timeout = _env_int("GUNICORN_TIMEOUT", 120)
graceful_timeout = 30
keepalive = 5
# Recycle workers now and then (allocator fragmentation, leaks in native code);
# the jitter keeps them from all reloading their model at once.
max_requests = _env_int("GUNICORN_MAX_REQUESTS", 2000)
max_requests_jitter = max(1, max_requests // 10) if max_requests else 0
# Heartbeat files on tmpfs: on a container's overlay filesystem they can stall.
worker_tmp_dir = "/dev/shm" if os.access("/dev/shm", os.W_OK) else None
# nginx is the only client: trust its X-Forwarded-Proto (https links).
forwarded_allow_ips = os.environ.get("GUNICORN_FORWARDED_ALLOW_IPS", "127.0.0.1,::1")
accesslog = "-"
errorlog = "-"
# The client as nginx saw it first, then the hop, the request, its time, the
# forwarding chain and the worker that served it.
access_log_format = (
    '%({x-real-ip}i)s %(h)s "%(r)s" %(s)s %(b)s %(M)sms "%(f)s" "%(a)s" '
    'xff="%({x-forwarded-for}i)s" worker=%(p)s'
)
# gunicorn 27 otherwise opens a control socket under ~/.gunicorn/.
control_socket_disable = True

# Prometheus metrics of every worker (app/metrics): each writes its samples here,
# /metrics sums them. Set before any worker imports prometheus_client.
METRICS_DIR = Path(os.environ.get("PROMETHEUS_MULTIPROC_DIR") or Path(
    os.environ.get("LOOKALIKE_INSTANCE_PATH", "").strip('"')
    or Path(__file__).resolve().parent / "instance") / "prometheus")
os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(METRICS_DIR)
METRICS_DIR.mkdir(parents=True, exist_ok=True)  # also for --print-config, which loads the app


def on_starting(server: Any) -> None:
    """Start the metrics from zero: samples of a previous run's workers would add up."""
    METRICS_DIR.mkdir(parents=True, exist_ok=True)
    for stale in METRICS_DIR.glob("*.db"):
        stale.unlink()


def child_exit(server: Any, worker: Any) -> None:
    """A dead worker's gauges leave the live sums (its counters are kept)."""
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid, str(METRICS_DIR))


def when_ready(server: Any) -> None:
    server.log.info(
        "Lookalike: %(workers)s worker(s) x %(threads)s threads, %(torch_threads)s torch "
        "thread(s) each (%(cpus)s CPUs, %(memory_mib)s MiB available, ~%(worker_mib)s MiB "
        "per worker)", PLAN,
    )
    show_generated_password(server)


def show_generated_password(server: Any) -> None:
    """Print the embedded default's generated admin password while it is still the one,
    whichever process made it (app/admin/first_password.py)."""
    from app.admin import first_password

    if os.environ.get("LOOKALIKE_ADMIN_PASSWORD_HASH"):
        return
    password = first_password.pending(first_password.instance_folder(Path(__file__).parent))
    if password:
        user = os.environ.get("LOOKALIKE_ADMIN_USER", "admin")
        server.log.warning("Admin login for /admin: user %r, password %s (generated; change it "
                           "with `flask --app wsgi admin reset-password`)", user, password)


def post_worker_init(worker: Any) -> None:
    """Load the model, and reach Milvus, before this worker accepts connections.

    Problems are logged, not fatal: the worker then serves /api/health with the
    reason (503) and retries on the next request, instead of gunicorn halting.
    """
    from app.readiness import warm_up

    if not hasattr(worker.wsgi, "app_context"):
        return
    with _heartbeat(worker):
        result = warm_up(worker.wsgi)
    if result.loaded:
        worker.log.info("Model %s loaded in %.1f s", result.model, result.seconds)
    for problem in result.problems:
        worker.log.warning("Not ready yet: %s", problem)


@contextmanager
def _heartbeat(worker: Any) -> Iterator[None]:
    """Tell the master we are alive while a (first, downloading) model loads.

    The master kills a worker silent for ``timeout`` seconds, and a worker only
    starts its heartbeat loop after this hook; a hub download can take longer.
    Capped at GUNICORN_WARMUP_TIMEOUT (default 15 min) so a hung load still dies.
    """
    done = threading.Event()
    deadline = time.monotonic() + (_env_int("GUNICORN_WARMUP_TIMEOUT", 900) or 900)

    def beat() -> None:
        while not done.wait(max(1.0, worker.timeout / 4)) and time.monotonic() < deadline:
            worker.notify()

    thread = threading.Thread(target=beat, name="warmup-heartbeat", daemon=True)
    thread.start()
    try:
        yield
    finally:
        done.set()
        thread.join()
