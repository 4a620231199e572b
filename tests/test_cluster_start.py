"""A local Ray whose raylet misses Ray's start-up deadline on a busy machine is started again."""

from __future__ import annotations

from typing import Any

import pytest

from app.cluster.run import LOCAL_START_TRIES, _start_local


class Ray:
    """Stands in for the ray module: init fails with ``errors`` in turn, then succeeds."""

    def __init__(self, *errors: Exception) -> None:
        self.errors = list(errors)
        self.calls: list[str] = []

    def init(self, **kwargs: Any) -> None:
        self.calls.append("init")
        if self.errors:
            raise self.errors.pop(0)

    def shutdown(self) -> None:
        self.calls.append("shutdown")


TIMED_OUT = Exception("The current node timed out during startup. This could happen ...")


# Seen under load: the GCS server did not write its port file in time.
NO_PORT_FILE = RuntimeError("Timed out waiting for file /tmp/ray-x/session_x/gcs_server_port_x")


def test_a_start_that_timed_out_is_shut_down_and_tried_again() -> None:
    ray = Ray(TIMED_OUT, NO_PORT_FILE)
    _start_local(ray, "/tmp/x", {})
    assert ray.calls == ["init", "shutdown", "init", "shutdown", "init"]


def test_other_failures_and_the_last_timeout_are_raised() -> None:
    with pytest.raises(ValueError, match="bad runtime_env"):
        _start_local(Ray(ValueError("bad runtime_env")), "/tmp/x", {})
    ray = Ray(*[TIMED_OUT] * LOCAL_START_TRIES)
    with pytest.raises(Exception, match="timed out during startup"):
        _start_local(ray, "/tmp/x", {})
    assert ray.calls.count("init") == LOCAL_START_TRIES
