"""The docs cannot drift from the code: the code map and the configuration tables."""

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
README = ROOT / "README.md"
CONFIGURATION = ROOT / "docs" / "configuration.md"  # the full table; the README's is a subset


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


def documented_settings(page: Path) -> set[str]:
    """The settings named in a page's configuration table, without the prefix."""
    names = set()
    for cell in CONFIG_ROW.findall(page.read_text()):
        names.update(name.removeprefix("LOOKALIKE_").lstrip("_")
                     for name in re.findall(r"`([A-Z0-9_]+)`", cell))
    return names


def config_settings() -> set[str]:
    return {name for cls in (Config, ProductionConfig) for name in vars(cls) if name.isupper()}


def test_configuration_page_has_every_setting_of_app_config() -> None:
    missing = config_settings() - documented_settings(CONFIGURATION)
    assert not missing, f"add to the table in docs/configuration.md: {sorted(missing)}"


def test_configuration_page_has_no_setting_app_config_lacks() -> None:
    unknown = documented_settings(CONFIGURATION) - config_settings() - READ_ELSEWHERE
    assert not unknown, (
        f"not in app/config.py, remove from docs/configuration.md: {sorted(unknown)}"
    )


def test_readme_shows_some_settings_and_only_real_ones() -> None:
    shown = documented_settings(README)
    assert shown, "the README's configuration table is gone or no longer parses"
    unknown = shown - config_settings() - READ_ELSEWHERE
    assert not unknown, f"not in app/config.py, remove from the README: {sorted(unknown)}"


def test_readme_settings_are_a_subset_of_the_configuration_page() -> None:
    missing = documented_settings(README) - documented_settings(CONFIGURATION)
    assert not missing, f"the README shows settings docs/configuration.md lacks: {sorted(missing)}"
