"""Configuration: one precision setting, with LOOKALIKE_BF16 kept as a deprecated alias."""

from __future__ import annotations

from pathlib import Path

import pytest

from app import create_app
from app.config import Config, TestConfig


@pytest.fixture
def instance(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    monkeypatch.setenv("LOOKALIKE_INSTANCE_PATH", str(tmp_path))
    return tmp_path


def test_precision_defaults_to_auto_and_tests_run_in_fp32(instance: Path) -> None:
    assert create_app(Config).config["PRECISION"] == "auto"
    assert create_app(TestConfig).config["PRECISION"] == "fp32"


def test_precision_comes_from_the_environment(
    instance: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LOOKALIKE_PRECISION", "bf16-autocast")
    assert create_app(Config).config["PRECISION"] == "bf16-autocast"


@pytest.mark.parametrize(("value", "precision"), [("false", "fp32"), ("true", "bf16")])
def test_the_deprecated_bf16_switch_sets_the_precision(
    instance: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture,
    value: str, precision: str,
) -> None:
    monkeypatch.setenv("LOOKALIKE_PRECISION", "auto")
    monkeypatch.setenv("LOOKALIKE_BF16", value)
    app = create_app(Config)
    assert app.config["PRECISION"] == precision and "BF16" not in app.config
    assert "LOOKALIKE_BF16 is deprecated" in caplog.text


def test_a_mapping_can_use_the_deprecated_switch_too(instance: Path) -> None:
    assert create_app({"BF16": False, "PRECISION": "bf16"}).config["PRECISION"] == "fp32"
