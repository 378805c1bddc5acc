#!/usr/bin/env bash
# Installs everything cnnc and its test suite need, into the current Python environment:
# Graphviz's `dot` (Debian/Ubuntu package), PyTorch + torchvision, and cnnc itself (editable)
# with its test extras. Safe to run again.
set -euo pipefail
cd "$(dirname "$0")/.."

PY=${PYTHON:-python3}
# torch and torchvision must be a matching pair; these two are the pinned, tested versions.
TORCH_SPEC=${CNNC_TORCH_SPEC:-"torch==2.14.1 torchvision==0.29.1"}

if ! command -v dot >/dev/null 2>&1; then
    if command -v apt-get >/dev/null 2>&1; then
        SUDO=""
        [ "$(id -u)" = 0 ] || SUDO="sudo"
        $SUDO apt-get update -qq
        DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq graphviz >/dev/null
    else
        echo "setup: please install Graphviz (it provides 'dot'), e.g. 'brew install graphviz'" >&2
    fi
fi

# shellcheck disable=SC2086
"$PY" -m pip install -q --disable-pip-version-check $TORCH_SPEC
"$PY" -m pip install -q --disable-pip-version-check -e ".[torch,test]"
# pyenv only sees new console scripts (cnnc) after a rehash
if command -v pyenv >/dev/null 2>&1; then pyenv rehash || true; fi
echo "setup: cnnc $("$PY" -c 'import cnnc; print(cnnc.__version__)') installed; dot: $(command -v dot || echo missing)"
