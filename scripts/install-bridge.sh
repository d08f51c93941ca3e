#!/usr/bin/env bash
# The one recipe that installs the bridge into a virtual environment: the bridge's Python packages,
# then pocketsphinx built from its PyPI source with Hearth's patches (third_party/pocketsphinx).
#
# Sourced by scripts/_env.sh (scripts/test and scripts/demo: `install_bridge -e "$ROOT[test]"`),
# and run by the add-on's image (hearth/Dockerfile) on a fresh Debian as root:
#
#   scripts/install-bridge.sh /opt/hearth      # Debian's python3.13, the venv, the bridge, espeak-ng
#
# HEARTH_STOCK_POCKETSPHINX=1 keeps PyPI's unpatched pocketsphinx wheel instead.

if [ "${BASH_SOURCE[0]}" = "$0" ] && [ "${#BASH_SOURCE[@]}" -eq 1 ]; then
    # Run, not sourced (when _env.sh sources this file back, BASH_SOURCE holds both): install the bridge (not editable) into the venv named on the command line,
    # with Debian's Python 3.13 and the programs the bridge runs (espeak-ng for spoken answers).
    if [ $# -ne 1 ]; then
        echo "usage: $0 VENV   (e.g. /opt/hearth; as root on Debian)" >&2
        exit 2
    fi
    export HEARTH_VENV="$1"
    # _env.sh finds (or installs) Python 3.13 and Debian packages, and sources this file again
    # for the functions below.
    source "$(dirname "${BASH_SOURCE[0]}")/_env.sh"
    ensure_python
    [ -x "$VENV/bin/python" ] || "$PY" -m venv "$VENV"
    install_bridge "$ROOT"
    apt_install_missing espeak-ng:espeak-ng
    "$VENV/bin/hearth-bridge" --version >/dev/null
    echo "Installed the bridge in $VENV: $VENV/bin/hearth-bridge (pocketsphinx $(pocketsphinx_version))" >&2
    exit 0
fi


# pocketsphinx built from its PyPI source with Hearth's patches: about half the decoding CPU,
# cepstral scaling for noisy speech, a warp fix.
POCKETSPHINX_VERSION=5.1.1
POCKETSPHINX_SDIST_SHA256=675778b309a22dfc9b7d37f7621976bba491d2a5f8c59696bd77fd6d07271355
# the local version names the patches' content: a venv with this exact build is not rebuilt
POCKETSPHINX_LOCAL_VERSION="hearth.1.p$(cat "$ROOT"/third_party/pocketsphinx/*.patch | sha1sum | cut -c1-8)"
# the patched build, kept for the next venv of this checkout (scripts/test makes two)
WHEEL_CACHE="${HEARTH_WHEEL_CACHE:-$ROOT/.cache/wheels}"

install_bridge() {
    # install_bridge <pip arguments naming the bridge>: into "$VENV", then pocketsphinx as asked.
    "$VENV/bin/python" -m pip install -q --disable-pip-version-check --upgrade pip
    # pytest-homeassistant-custom-component (the test extra) pins Home Assistant 2026.2.3, whose
    # metadata asks for Python 3.14 although it runs on 3.13; hence --ignore-requires-python.
    # hassil and the intents are pinned to what Home Assistant 2026.2.3's conversation requires, so
    # the bridge runs with exactly what the tests ran.
    "$VENV/bin/python" -m pip install -q --disable-pip-version-check --ignore-requires-python \
        "$@" "hassil==3.5.0" "home-assistant-intents==2026.1.28"
    if [ -z "${HEARTH_STOCK_POCKETSPHINX:-}" ]; then
        install_patched_pocketsphinx
    elif [[ "$(pocketsphinx_version)" == *+hearth* ]]; then
        # a venv that had the patched build: back to PyPI's wheel, as asked
        "$VENV/bin/python" -m pip install -q --disable-pip-version-check --no-deps \
            --force-reinstall --only-binary :all: "pocketsphinx==$POCKETSPHINX_VERSION"
    fi
}

pocketsphinx_version() {
    "$VENV/bin/python" -c 'from importlib.metadata import version; print(version("pocketsphinx"))' \
        2>/dev/null || true
}

install_patched_pocketsphinx() {
    if [ "$(pocketsphinx_version)" = "$POCKETSPHINX_VERSION+$POCKETSPHINX_LOCAL_VERSION" ] \
            && [ -d "$VENV/pocketsphinx-stock/pocketsphinx" ]; then
        return 0  # already built from these patches (scripts/test and scripts/demo share the venv)
    fi
    if [ -z "$(cached_pocketsphinx_wheel)" ]; then
        build_patched_pocketsphinx_wheel
    fi
    "$VENV/bin/python" -m pip install -q --disable-pip-version-check --no-deps --force-reinstall \
        "$(cached_pocketsphinx_wheel)"
    # the unpatched wheel beside it, for the test that both decode alike
    "$VENV/bin/python" -m pip install -q --disable-pip-version-check --no-deps --only-binary :all: \
        --upgrade --target "$VENV/pocketsphinx-stock" "pocketsphinx==$POCKETSPHINX_VERSION"
}

cached_pocketsphinx_wheel() {
    [ -d "$WHEEL_CACHE" ] || return 0
    find "$WHEEL_CACHE" -maxdepth 1 -name "pocketsphinx-$POCKETSPHINX_VERSION+$POCKETSPHINX_LOCAL_VERSION-*.whl" \
        | head -n 1
}

build_patched_pocketsphinx_wheel() {
    # into "$WHEEL_CACHE": PyPI's source (its hash checked), Hearth's patches, the local version
    local build
    # ninja from Debian: without it the build backend asks PyPI for ninja, which may come as source
    # only and then needs a C++ compiler
    apt_install_missing cc:gcc make:make patch:patch cmake:cmake ninja:ninja-build
    [ -f /usr/include/stdio.h ] || apt_install_missing dummy-never-there:libc6-dev
    if ! "$VENV/bin/python" -c 'import os, sysconfig
assert os.path.exists(os.path.join(sysconfig.get_path("include"), "Python.h"))' 2>/dev/null; then
        apt_install_missing dummy-never-there:python3.13-dev
    fi
    build="$(mktemp -d)"
    echo "Building pocketsphinx $POCKETSPHINX_VERSION with Hearth's patches (about 40 s of CPU)" >&2
    # --no-binary pocketsphinx, not :all: (which pip also applies to the build tools it installs to
    # read the source's metadata, and then compiles Cython from source: minutes on a small machine)
    "$VENV/bin/python" -m pip download -q --disable-pip-version-check --no-deps \
        --no-binary pocketsphinx -d "$build" "pocketsphinx==$POCKETSPHINX_VERSION"
    echo "$POCKETSPHINX_SDIST_SHA256  $build/pocketsphinx-$POCKETSPHINX_VERSION.tar.gz" | sha256sum -c --quiet
    tar -xzf "$build/pocketsphinx-$POCKETSPHINX_VERSION.tar.gz" -C "$build"
    local src="$build/pocketsphinx-$POCKETSPHINX_VERSION" patch_file
    for patch_file in "$ROOT"/third_party/pocketsphinx/*.patch; do
        patch -d "$src" -p1 --quiet --forward < "$patch_file"
    done
    sed -i "s/^version = \"$POCKETSPHINX_VERSION\"/version = \"$POCKETSPHINX_VERSION+$POCKETSPHINX_LOCAL_VERSION\"/" "$src/pyproject.toml"
    grep -q "^version = \"$POCKETSPHINX_VERSION+$POCKETSPHINX_LOCAL_VERSION\"" "$src/pyproject.toml" \
        || { echo "error: could not mark the patched pocketsphinx's version" >&2; exit 1; }
    mkdir -p "$WHEEL_CACHE"
    "$VENV/bin/python" -m pip wheel -q --disable-pip-version-check --no-deps -w "$WHEEL_CACHE" "$src"
    rm -rf "$build"
}
