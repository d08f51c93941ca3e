"""The add-on's image as owners get it: prebuilt per architecture by the release workflow
(.github/workflows/addon-release.yml, Home Assistant's builder actions) from this repository's own
source, named by hearth/config.yaml's `image`; and, for forks that name no image, Supervisor's own
build from the add-on folder with the source copied in by scripts/addon-source.

Checked here: config.yaml's image and version against pyproject.toml and the repository's owner,
the workflow's syntax and the inputs it gives each builder action, scripts/addon-release-info
(what the workflow runs) on good and bad releases, and that the build context holds everything
the install recipe uses. The recipe itself runs in a fresh Debian root in test_install_debian.py
(HEARTH_SLOW=1), from a context made by scripts/addon-source."""

from __future__ import annotations

import fnmatch
import json
import re
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
ADDON = ROOT / "hearth"
WORKFLOW = ROOT / ".github/workflows/addon-release.yml"
#: the builder release the workflow pins (tag 2026.06.0), and each action's inputs at that
#: release (home-assistant/builder: actions/*/action.yml): required ones first
BUILDER = "home-assistant/builder/actions/"
BUILDER_INPUTS = {
    "prepare-multi-arch-matrix": ({"architectures", "image-name"}, {"multi-arch", "registry-prefix"}),
    "build-image": ({"arch", "container-registry-password", "image", "image-tags", "version"},
                    {"build-args", "cache-gha", "cache-gha-scope", "cache-image-tag", "container-registry",
                     "container-registry-username", "context", "cosign", "cosign-base-identity",
                     "cosign-base-issuer", "cosign-base-verify", "cosign-identity", "cosign-issuer", "file",
                     "labels", "load", "push"}),
    "publish-multi-arch-manifest": ({"architectures", "container-registry-password", "image-name", "image-tags"},
                                    {"container-registry", "container-registry-username", "cosign",
                                     "registry-prefix", "skip-existing"}),
}


def load(path: Path) -> Any:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def owner() -> str:
    """The repository's owner, as its store manifest and the integration's manifest name it."""
    url = load(ROOT / "repository.yaml")["url"]
    match = re.fullmatch(r"https://github\.com/([^/]+)/[^/]+", url)
    assert match, url
    manifest = json.loads((ROOT / "custom_components/hearth/manifest.json").read_text())
    assert f"https://github.com/{match.group(1)}/" in manifest["issue_tracker"]
    return match.group(1)


def test_image_and_version_agree_with_pyproject_and_the_owner() -> None:
    config = load(ADDON / "config.yaml")
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert config["version"] == pyproject["project"]["version"]
    assert config["image"] == f"ghcr.io/{owner()}/{{arch}}-hearth"
    # what Supervisor pulls for each architecture, under the tag the workflow pushes
    for arch in config["arch"]:
        assert config["image"].replace("{arch}", arch) == f"ghcr.io/{owner()}/{arch}-{config['slug']}"


def run_info(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(ROOT / "scripts/addon-release-info"), *args],
                          capture_output=True, text=True, timeout=60, check=False)


def test_release_info_for_a_matching_release() -> None:
    config = load(ADDON / "config.yaml")
    result = run_info("--event", "release", "--tag", f"v{config['version']}")
    assert result.returncode == 0, result.stderr
    info = dict(line.split("=", 1) for line in result.stdout.splitlines())
    assert info["version"] == config["version"] and info["publish"] == "true"
    assert f"{info['registry_prefix']}/{{arch}}-{info['image_name']}" == config["image"]
    assert json.loads(info["architectures"]) == config["arch"] == ["amd64", "aarch64"]
    assert json.loads(info["build_from"]) == load(ADDON / "build.yaml")["build_from"]
    # a build by hand publishes only when asked
    result = run_info("--event", "workflow_dispatch", "--publish", "false")
    assert result.returncode == 0 and "publish=false" in result.stdout.splitlines()


def test_release_info_refuses_a_tag_that_is_not_the_version() -> None:
    result = run_info("--event", "release", "--tag", "v9.9.9")
    assert result.returncode == 1 and result.stdout == ""
    assert "expected tag v" in result.stderr and result.stderr.startswith("::error::")


def test_release_info_refuses_versions_that_disagree(tmp_path: Path) -> None:
    sys.path.insert(0, str(ROOT / "scripts"))
    try:
        import importlib.machinery
        import importlib.util
        loader = importlib.machinery.SourceFileLoader("addon_release_info", str(ROOT / "scripts/addon-release-info"))
        spec = importlib.util.spec_from_loader(loader.name, loader)
        assert spec
        module = importlib.util.module_from_spec(spec)
        loader.exec_module(module)
    finally:
        sys.path.pop(0)
    (tmp_path / "hearth").mkdir()
    for name in ("config.yaml", "build.yaml"):
        (tmp_path / "hearth" / name).write_text((ADDON / name).read_text())
    pyproject = (ROOT / "pyproject.toml").read_text()
    (tmp_path / "pyproject.toml").write_text(re.sub(r'(?m)^version = ".*"$', 'version = "0.0.9"', pyproject, count=1))
    with pytest.raises(module.ReleaseError, match="pyproject.toml says 0.0.9"):
        module.release_info(tmp_path, "release", "v0.0.9")
    (tmp_path / "pyproject.toml").write_text(pyproject)
    config = (ADDON / "config.yaml").read_text()
    (tmp_path / "hearth/config.yaml").write_text(config.replace("{arch}-hearth", "hearth-{arch}"))
    with pytest.raises(module.ReleaseError, match="image must look like"):
        module.release_info(tmp_path, "workflow_dispatch")


def workflow_steps(workflow: dict[str, Any]) -> list[dict[str, Any]]:
    return [step for job in workflow["jobs"].values() for step in job["steps"]]


def test_release_workflow_parses_and_gives_the_builder_its_inputs() -> None:
    workflow = load(WORKFLOW)
    triggers = workflow.get("on", workflow.get(True))  # YAML 1.1 reads the key `on` as true
    assert triggers["release"] == {"types": ["published"]}
    assert triggers["workflow_dispatch"]["inputs"]["publish"]["type"] == "boolean"
    assert set(workflow["jobs"]) == {"prepare", "build", "manifest"}
    used = {}
    for step in workflow_steps(workflow):
        uses = step.get("uses", "")
        if uses.startswith(BUILDER):
            name, _, ref = uses.removeprefix(BUILDER).partition("@")
            # pinned to one commit of the builder (its release tag in a comment)
            assert re.fullmatch(r"[0-9a-f]{40}", ref), uses
            required, optional = BUILDER_INPUTS[name]
            given = set(step.get("with", {}))
            assert required <= given, f"{name} lacks {required - given}"
            assert given <= required | optional, f"{name} has no inputs {given - required - optional}"
            used[name] = step["with"]
        if "run" in step:
            assert "${{" not in step["run"], "expressions go through env:, not into the script"
    assert set(used) == set(BUILDER_INPUTS)
    build = used["build-image"]
    # the repository is the build context: the image is built from this checkout's source
    assert build["context"] == "." and build["file"] == "hearth/Dockerfile"
    assert "BUILD_FROM=" in build["build-args"]
    assert build["push"] == "${{ needs.prepare.outputs.publish }}"
    build_job = workflow["jobs"]["build"]
    assert build_job["strategy"]["matrix"] == "${{ fromJSON(needs.prepare.outputs.build_matrix) }}"
    assert build_job["permissions"]["packages"] == "write" and build_job["permissions"]["id-token"] == "write"
    assert workflow["jobs"]["manifest"]["if"] == "needs.prepare.outputs.publish == 'true'"
    # the prepare job runs scripts/addon-release-info (tested above) and hands on what it printed
    run = "\n".join(step.get("run", "") for step in workflow["jobs"]["prepare"]["steps"])
    assert "scripts/addon-release-info" in run and '>> "$GITHUB_OUTPUT"' in run
    outputs = workflow["jobs"]["prepare"]["outputs"]
    printed = set(dict(line.split("=", 1) for line in run_info("--event", "workflow_dispatch").stdout.splitlines()))
    assert {key for key, value in outputs.items() if "steps.info." in value} == printed


def addon_source(dest: Path) -> list[str]:
    subprocess.run([str(ROOT / "scripts/addon-source"), str(dest)], check=True, capture_output=True, timeout=120)
    return sorted(str(p.relative_to(dest)) for p in dest.rglob("*") if p.is_file())


def test_build_context_holds_what_the_install_uses(tmp_path: Path) -> None:
    src = tmp_path / "src"
    files = addon_source(src)
    source_parts = re.search(r"^SOURCE=\((.*)\)$", (ROOT / "scripts/addon-source").read_text(), re.M)
    assert source_parts
    parts = source_parts.group(1).split()
    tracked = subprocess.run(["git", "-C", str(ROOT), "ls-files", "--", *parts], capture_output=True, text=True,
                             check=True).stdout.split()
    assert files == sorted(tracked)
    assert not any("__pycache__" in f or f.endswith(".pyc") for f in files)
    # every file the Python package build and the install recipe name is there
    project = tomllib.loads((src / "pyproject.toml").read_text())["project"]
    assert (src / project["readme"]).is_file()
    assert all((src / name).is_file() for name in project["license-files"])
    for target in project["scripts"].values():
        module = target.split(":")[0].replace(".", "/")
        assert (src / f"{module}.py").is_file(), target
    assert (src / "scripts/install-bridge.sh").stat().st_mode & 0o111
    assert list((src / "third_party/pocketsphinx").glob("*.patch"))
    for pattern in tomllib.loads((src / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]["bridge"]:
        if "*" not in pattern:
            assert (src / "bridge" / pattern).exists(), pattern
    assert any(f.startswith("bridge/status_page/") for f in files) and any(f.startswith("bridge/data/") for f in files)
    # the files scripts/install-bridge.sh reads outside the package (_env.sh's others are for tests)
    recipe = (src / "scripts/install-bridge.sh").read_text()
    used = re.findall(r'"\$ROOT"?/([\w./-]+)', recipe)
    assert used and all((src / path).exists() for path in used), used
    assert (src / "scripts/_env.sh").is_file()


def dockerignore_keeps(path: str) -> bool:
    """Whether hearth/Dockerfile.dockerignore lets `path` (relative to the context) in: Docker's
    rule, the last matching pattern wins, a pattern also matching everything under a folder."""
    keep = True
    for line in (ADDON / "Dockerfile.dockerignore").read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        negate, pattern = line.startswith("!"), line.lstrip("!")
        parts = path.split("/")
        prefixes = ["/".join(parts[:i]) for i in range(1, len(parts) + 1)]
        if pattern.startswith("**/"):
            matched = any(fnmatch.fnmatch(part, pattern[3:]) for part in parts)
        else:
            matched = any(fnmatch.fnmatch(prefix, pattern) for prefix in prefixes)
        if matched:
            keep = negate
    return keep


def test_dockerfile_builds_from_either_context_and_downloads_no_source(tmp_path: Path) -> None:
    dockerfile = (ADDON / "Dockerfile").read_text()
    assert "archive/refs" not in dockerfile and "HEARTH_ARCHIVE" not in dockerfile and "git clone" not in dockerfile
    assert re.search(r"^COPY \. /usr/src/context$", dockerfile, re.M)
    # from the repository root (the release workflow): the source and the add-on's rootfs get in,
    # the rest of the checkout (venvs, caches, tests, docs) does not
    tracked = subprocess.run(["git", "-C", str(ROOT), "ls-files"], capture_output=True, text=True,
                             check=True).stdout.split()
    kept = {path for path in tracked if dockerignore_keeps(path)}
    parts = ("pyproject.toml", "README.md", "LICENSE", "bridge/", "hearth_satellite/", "scripts/", "third_party/",
             "hearth/rootfs/", "hearth/config.yaml")
    assert kept == {path for path in tracked if path.startswith(parts)}
    assert not dockerignore_keeps(".venv/bin/python") and not dockerignore_keeps("bridge/__pycache__/x.pyc")
    # from the add-on folder (Supervisor's build): src/ (scripts/addon-source) and rootfs/
    addon_files = addon_source(tmp_path / "src")
    assert all(dockerignore_keeps(f"src/{path}") for path in addon_files)
    assert dockerignore_keeps("rootfs/etc/s6-overlay/s6-rc.d/hearth/run") and dockerignore_keeps("config.yaml")
    assert not dockerignore_keeps("icon.png")
    # the two layouts the RUN step tells apart, and the clear error for neither
    assert "/usr/src/context/hearth/config.yaml" in dockerfile and "/usr/src/context/src/pyproject.toml" in dockerfile
    assert "scripts/addon-source" in dockerfile
    assert (ROOT / ".gitignore").read_text().count("/hearth/src/") == 1
