"""The docs cannot drift from the code: the code map and the configuration table."""

from __future__ import annotations

import re
from pathlib import Path

from app.config import Config, ProductionConfig

ROOT = Path(__file__).resolve().parent.parent
MAPPED = ("app", "trainer", "bench")
# A code-map row: | `path/to/module.py` | what it holds |
MAP_ROW = re.compile(r"^\| `([\w./]+\.py)` \|", re.MULTILINE)
# A configuration row's first cell: `LOOKALIKE_NAME`, `_OTHER_NAME`, ...
CONFIG_ROW = re.compile(r"^\| (`(?:LOOKALIKE)?_[A-Z0-9_]+`(?:, `_[A-Z0-9_]+`)*) \|", re.MULTILINE)
# Read by create_app and wsgi.py rather than kept in a config class.
READ_ELSEWHERE = {"CONFIG", "INSTANCE_PATH"}


def code_map() -> list[str]:
    return MAP_ROW.findall((ROOT / "docs" / "architecture.md").read_text())


def modules_on_disk() -> set[str]:
    return {p.relative_to(ROOT).as_posix()
            for top in MAPPED for p in (ROOT / top).rglob("*.py")}


def test_code_map_lists_every_module_under_app_trainer_and_bench() -> None:
    mapped = {path for path in code_map() if path.split("/")[0] in MAPPED}
    missing = modules_on_disk() - mapped
    assert not missing, f"add to the code map in docs/architecture.md: {sorted(missing)}"


def test_code_map_lists_no_module_that_does_not_exist() -> None:
    gone = [path for path in code_map() if not (ROOT / path).is_file()]
    assert not gone, f"remove from the code map in docs/architecture.md: {gone}"


def test_code_map_lists_each_module_once() -> None:
    paths = code_map()
    assert len(paths) == len(set(paths)), sorted(p for p in paths if paths.count(p) > 1)


def readme_settings() -> set[str]:
    names = set()
    for cell in CONFIG_ROW.findall((ROOT / "README.md").read_text()):
        names.update(name.removeprefix("LOOKALIKE_").lstrip("_")
                     for name in re.findall(r"`([A-Z0-9_]+)`", cell))
    return names


def config_settings() -> set[str]:
    return {name for cls in (Config, ProductionConfig) for name in vars(cls) if name.isupper()}


def test_readme_configuration_table_has_every_setting_of_app_config() -> None:
    missing = config_settings() - readme_settings()
    assert not missing, f"add to the README's configuration table: {sorted(missing)}"


def test_readme_configuration_table_has_no_setting_app_config_lacks() -> None:
    unknown = readme_settings() - config_settings() - READ_ELSEWHERE
    assert not unknown, f"not in app/config.py, remove from the README: {sorted(unknown)}"
