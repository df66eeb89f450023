#!/usr/bin/env bash
# Installs the Debian/Ubuntu packages needed to build and run requests_engine, and with
# --tests those its tests also need: the reference implementations the signing code is checked
# against (botocore for AWS SigV4, google-auth for Google's service-account JWT, with
# cryptography, which bookworm's google-auth does not pull in), run by Debian's python3, and
# clang with its runtime libraries for the fuzz targets (tools/fuzz.sh), and chromium, in which
# the run report's test renders the report (headless) and reads what it shows.
# Fast when everything is already there: apt is not touched at all.
#   bash tools/install-deps.sh [--tests]
set -euo pipefail

packages=(
  ca-certificates git g++ make cmake ninja-build meson ccache pkg-config
  libcpp-httplib-dev libssl-dev nlohmann-json3-dev doctest-dev libcli11-dev
  openssl curl
)
case "${1:-}" in
  "") ;;
  --tests) packages+=(python3 python3-botocore python3-google-auth python3-cryptography clang libclang-rt-14-dev chromium) ;;
  *) echo "usage: bash tools/install-deps.sh [--tests]" >&2; exit 2 ;;
esac

if ! command -v dpkg-query >/dev/null 2>&1 || ! command -v apt-get >/dev/null 2>&1; then
  echo "install-deps: not a Debian-like system (no apt-get); install these yourself:" >&2
  echo "  ${packages[*]}" >&2
  exit 0
fi

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}\n' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "install-deps: all ${#packages[@]} packages already installed"
  exit 0
fi

sudo=()
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null 2>&1; then
    sudo=(sudo)
  else
    echo "install-deps: missing packages and neither root nor sudo: ${missing[*]}" >&2
    exit 1
  fi
fi

echo "install-deps: installing ${missing[*]}"
"${sudo[@]}" apt-get update
"${sudo[@]}" env DEBIAN_FRONTEND=noninteractive \
  apt-get install -y --no-install-recommends "${missing[@]}"
