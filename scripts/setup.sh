#!/usr/bin/env bash
# Set up napari-slideseg on a fresh machine: system packages for headless Qt
# (when run as root with apt), a virtual environment in .venv, and the package.
#   bash scripts/setup.sh            # the plugin (base install: everything it needs)
#   bash scripts/setup.sh --testing  # plus the test tools and napari with PyQt6
set -euo pipefail
cd "$(dirname "$0")/.."
extra=""
[[ "${1:-}" == "--testing" ]] && extra="[testing]"

if [[ -n "$extra" ]] && ! command -v Xvfb >/dev/null 2>&1; then
  if [[ $(id -u) -eq 0 ]] && command -v apt-get >/dev/null 2>&1; then
    # napari's viewer tests need a virtual X server and the xcb libraries Qt loads.
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq xvfb xauth libxcb-icccm4 \
      libxcb-keysyms1 libxcb-image0 libxcb-render-util0 libxcb-xinerama0 libxcb-randr0 \
      libxcb-shape0 libxcb-cursor0 libxkbcommon-x11-0 >/dev/null
  else
    echo "setup: Xvfb is missing; install xvfb (viewer tests need it)" >&2
  fi
fi

python3 -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
# constraints.txt pins torch/torchvision to a matching pair (see the file).
.venv/bin/python -m pip install -q -c constraints.txt -e ".${extra}"
echo "setup: done (.venv/bin/slideseg, .venv/bin/python)"
