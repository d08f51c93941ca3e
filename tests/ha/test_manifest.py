"""The manifest tells the truth: every Home Assistant integration the code imports is declared
(hassfest's rule, `script/hassfest/dependencies.py`), and the code needs no library beyond what
Home Assistant itself installs (`requirements` is empty)."""

from __future__ import annotations

import ast
import json
import sys
from pathlib import Path

from homeassistant.const import Platform

PACKAGE = Path(__file__).parents[2] / "custom_components" / "hearth"

# hassfest's ALLOWED_USED_COMPONENTS besides the entity platforms: internal integrations any
# integration may use without declaring them.
HASSFEST_ALLOWED = {
    "alert", "automation", "conversation", "default_config", "device_automation", "frontend",
    "group", "homeassistant", "input_boolean", "input_button", "input_datetime", "input_number",
    "input_select", "input_text", "media_source", "onboarding", "panel_custom",
    "persistent_notification", "person", "script", "shopping_list", "sun", "system_health",
    "system_log", "timer", "webhook", "websocket_api", "zone", "mjpeg", "stream",
}
# Libraries Home Assistant core itself depends on (its package metadata), so no requirement.
CORE_LIBRARIES = {"homeassistant", "voluptuous", "yarl", "aiohttp"}


def _imports(path: Path) -> list[ast.ImportFrom | ast.Import]:
    """The imports of a module, without those under `if TYPE_CHECKING:` (as hassfest does)."""
    found: list[ast.ImportFrom | ast.Import] = []

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and isinstance(node.test, ast.Name) and (
            node.test.id == "TYPE_CHECKING"
        ):
            return
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            found.append(node)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(ast.parse(path.read_text()))
    return found


def _referenced_components() -> dict[str, set[str]]:
    referenced: dict[str, set[str]] = {}
    for path in sorted(PACKAGE.glob("**/*.py")):
        for node in _imports(path):
            domains: list[str] = []
            if isinstance(node, ast.ImportFrom) and node.module:
                if node.module.startswith("homeassistant.components."):
                    domains.append(node.module.split(".")[2])
                elif node.module == "homeassistant.components":
                    domains.extend(alias.name for alias in node.names)
            elif isinstance(node, ast.Import):
                domains.extend(
                    alias.name.split(".")[2]
                    for alias in node.names
                    if alias.name.startswith("homeassistant.components.")
                )
            for domain in domains:
                referenced.setdefault(domain, set()).add(path.name)
    return referenced


def test_every_used_integration_is_declared() -> None:
    manifest = json.loads((PACKAGE / "manifest.json").read_text())
    allowed = (
        {platform.value for platform in Platform}
        | HASSFEST_ALLOWED
        | set(manifest.get("dependencies", []))
        | set(manifest.get("after_dependencies", []))
        | {path.stem for path in PACKAGE.glob("*.py")}  # platforms of this integration
    )
    referenced = _referenced_components()
    assert "ffmpeg" in referenced  # the check below sees it
    undeclared = {domain: files for domain, files in referenced.items() if domain not in allowed}
    assert undeclared == {}
    assert not set(manifest["dependencies"]) & set(manifest.get("after_dependencies", []))


def test_no_library_beyond_home_assistant() -> None:
    manifest = json.loads((PACKAGE / "manifest.json").read_text())
    assert manifest["requirements"] == []
    libraries: dict[str, set[str]] = {}
    for path in sorted(PACKAGE.glob("**/*.py")):
        for node in _imports(path):
            if isinstance(node, ast.ImportFrom):
                if node.level or not node.module:
                    continue  # relative: the integration's own modules
                names = [node.module]
            else:
                names = [alias.name for alias in node.names]
            for name in names:
                top = name.split(".")[0]
                if top not in sys.stdlib_module_names and top != "__future__":
                    libraries.setdefault(top, set()).add(path.name)
    assert set(libraries) <= CORE_LIBRARIES, libraries
