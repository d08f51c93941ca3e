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
        install_bridge -e "$ROOT[$extras]"
        touch "$stamp"
    fi
}

# The bridge's install recipe (its packages, pocketsphinx with Hearth's patches), shared with the
# add-on's image.
source "$ROOT/scripts/install-bridge.sh"
