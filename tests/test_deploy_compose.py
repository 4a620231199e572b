"""docker-compose.yml validates, and holds the stack the README describes.

No Docker engine here: Debian's docker-compose 1.29 validates and resolves the
file offline (`apt-get install -y --no-install-recommends docker-compose`).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.servers import ROOT

COMPOSE_FILES = [ROOT / "docker-compose.yml", ROOT / "docker-compose.gpu.yml"]
ENV_EXAMPLE = ROOT / ".env.example"
SERVICES = {"etcd", "minio", "milvus", "redis", "web", "nginx", "trainer", "ray-head",
            "ray-worker"}
PROFILED = {"trainer": ["trainer"], "ray-head": ["ray"], "ray-worker": ["ray"]}


@pytest.fixture(scope="module")
def compose() -> str:
    executable = shutil.which("docker-compose")
    if executable is None:
        pytest.skip("docker-compose is not installed: "
                    "`apt-get install -y --no-install-recommends docker-compose`.")
    return executable


def run(compose: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in documented_variables()}
    return subprocess.run([compose, *args], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=120)


def resolved(compose: str, *args: str) -> dict[str, Any]:
    """The resolved file as data, parsed by docker-compose's own Python (it ships PyYAML)."""
    done = run(compose, *args, "config")
    assert done.returncode == 0, done.stderr
    python = Path(compose).read_text().splitlines()[0].removeprefix("#!").strip()
    parsed = subprocess.run(
        [python, "-c", "import json, sys, yaml; print(json.dumps(yaml.safe_load(sys.stdin)))"],
        input=done.stdout, capture_output=True, text=True, timeout=60)
    assert parsed.returncode == 0, parsed.stderr
    return json.loads(parsed.stdout)


def documented_variables() -> set[str]:
    return set(re.findall(r"^([A-Z][A-Z0-9_]*)=", ENV_EXAMPLE.read_text(), re.MULTILINE))


GPU = ["-f", "docker-compose.yml", "-f", "docker-compose.gpu.yml"]


@pytest.mark.parametrize("args", [[], ["--env-file", ".env.example"], GPU],
                         ids=["defaults", "env-example", "gpu"])
def test_the_compose_files_validate(compose: str, args: list[str]) -> None:
    done = run(compose, *args, "config", "-q")
    assert done.returncode == 0, done.stderr


def test_the_stack_has_its_services_and_the_trainer_under_a_profile(compose: str) -> None:
    services = resolved(compose)["services"]
    assert set(services) == SERVICES
    assert {name: s["profiles"] for name, s in services.items() if "profiles" in s} == PROFILED


def test_every_server_is_pinned_and_health_checked(compose: str) -> None:
    services = resolved(compose)["services"]
    for name in SERVICES - {"trainer"}:
        assert services[name]["healthcheck"]["test"], name
    for name in ("etcd", "minio", "milvus", "redis", "nginx"):
        image = services[name]["image"]
        assert re.search(r":(v?\d+\.\d+\.\d+|RELEASE\.[0-9TZ-]+)$", image), image
    assert services["milvus"]["image"] == "milvusdb/milvus:v2.5.16"


def test_services_start_in_order_of_health(compose: str) -> None:
    services = resolved(compose)["services"]
    expected = {"milvus": {"etcd", "minio"}, "web": {"milvus", "minio", "redis"},
                "nginx": {"web"}}
    for name, needs in expected.items():
        depends = services[name]["depends_on"]
        assert set(depends) == needs, name
        assert {d["condition"] for d in depends.values()} == {"service_healthy"}, name


def test_data_lives_in_named_volumes_and_only_nginx_is_public(compose: str) -> None:
    config = resolved(compose)
    named = {"etcd-data", "minio-data", "milvus-data", "redis-data", "instance", "hf-cache"}
    assert named <= set(config["volumes"])
    services = config["services"]
    assert any(v.startswith("milvus-data:") for v in services["milvus"]["volumes"])
    published = {name: s.get("ports", []) for name, s in services.items() if s.get("ports")}
    assert set(published) == {"nginx", "minio"}
    assert all(str(p).startswith("127.0.0.1:") for ports in published.values() for p in ports)


def test_the_app_is_wired_to_milvus_minio_and_nginx(compose: str) -> None:
    services = resolved(compose)["services"]
    env = services["web"]["environment"]
    assert env["LOOKALIKE_MILVUS_URI"] == "http://milvus:19530"
    assert env["LOOKALIKE_STORAGE"] == "s3://lookalike"
    assert env["LOOKALIKE_S3_ENDPOINT"] == "minio:9000"
    access_key = services["minio"]["environment"]["MINIO_ROOT_USER"]
    assert env["LOOKALIKE_S3_ACCESS_KEY"] == access_key
    assert services["milvus"]["environment"]["MINIO_ACCESS_KEY_ID"] == access_key
    assert services["nginx"]["environment"]["LOOKALIKE_UPSTREAM"] == "web:8000"
    assert env["LOOKALIKE_REDIS_URL"] == "redis://redis:6379/0"
    mounts = [v.split(":")[0] for s in services.values() for v in s.get("volumes", [])]
    for path in (m for m in mounts if m.startswith("/")):
        if "gallery" not in path and "datasets" not in path:  # user folders, made on first run
            assert Path(path).exists(), path


def test_the_gpu_override_hands_the_gpu_to_the_app(compose: str) -> None:
    web = resolved(compose, *GPU)["services"]["web"]
    assert web["build"]["args"]["TORCH_INDEX"] == "https://pypi.org/simple"
    assert web["deploy"]["resources"]["reservations"]["devices"][0]["capabilities"] == ["gpu"]


def test_env_example_documents_every_variable_the_compose_files_use() -> None:
    used = set()
    for path in COMPOSE_FILES:
        used |= set(re.findall(r"\$\{([A-Z][A-Z0-9_]*)", path.read_text()))
    assert used <= documented_variables(), used - documented_variables()


def test_the_image_installs_the_pinned_torch_from_the_cpu_index() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert "FROM python:3.11-slim" in dockerfile
    assert "ARG TORCH_INDEX=https://download.pytorch.org/whl/cpu" in dockerfile
    assert "grep -E '^(torch|torchvision)==' requirements.txt" in dockerfile
    requirements = (ROOT / "requirements.txt").read_text()
    assert re.search(r"^torch==\S+$", requirements, re.M)
    assert re.search(r"^torchvision==\S+$", requirements, re.M)
    assert 'CMD ["gunicorn", "-c", "gunicorn.conf.py", "wsgi:app"]' in dockerfile


def test_minio_sends_bucket_events_to_the_app_with_its_token(compose: str) -> None:
    services = resolved(compose)["services"]
    minio, web = services["minio"]["environment"], services["web"]["environment"]
    assert minio["MINIO_NOTIFY_WEBHOOK_ENABLE_lookalike"] == "on"
    assert minio["MINIO_NOTIFY_WEBHOOK_ENDPOINT_lookalike"] == "http://web:8000/api/hooks/s3"
    assert minio["MINIO_NOTIFY_WEBHOOK_AUTH_TOKEN_lookalike"] == web["LOOKALIKE_S3_WEBHOOK_TOKEN"]


def test_redis_can_be_turned_off_for_a_single_web_server(compose: str, tmp_path: Path) -> None:
    """``LOOKALIKE_REDIS_URL=`` (empty) in .env keeps the instance volume and the
    generated password, as before Redis was in the stack."""
    env_file = tmp_path / "single.env"
    env_file.write_text("LOOKALIKE_REDIS_URL=\n")
    web = resolved(compose, "--env-file", str(env_file))["services"]["web"]
    assert web["environment"]["LOOKALIKE_REDIS_URL"] in ("", None)


def test_the_ray_profile_runs_a_head_and_workers_from_the_app_image_with_ray(compose: str) -> None:
    services = resolved(compose, "--profile", "ray")["services"]
    head, worker = services["ray-head"], services["ray-worker"]
    for node in (head, worker):
        assert node["build"]["args"]["WITH_RAY"] == "1"
        assert node["environment"]["LOOKALIKE_MILVUS_URI"] == "http://milvus:19530"
        assert node["environment"]["LOOKALIKE_STORAGE"] == "s3://lookalike"
    assert "--head" in head["command"] and head["environment"]["LOOKALIKE_RAY_ADDRESS"] == "auto"
    assert "--address=ray-head:6379" in worker["command"]
    assert worker["depends_on"]["ray-head"]["condition"] == "service_healthy"
    assert 'if [ "$WITH_RAY" = 1 ]; then pip install -r requirements-ray.txt' in (
        ROOT / "Dockerfile").read_text()
