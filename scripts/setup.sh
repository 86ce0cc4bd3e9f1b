#!/usr/bin/env bash
# Installs everything autoglm needs to build and test, from Debian packages and npm.
# Idempotent and non-interactive: packages already present are not touched; safe to run twice.
set -euo pipefail
cd "$(dirname "$0")/.."

DEB_PACKAGES=(
  build-essential cmake pkg-config git
  nlohmann-json3-dev libboost-dev libpcre2-dev
  libpng-dev libjpeg62-turbo-dev libwebp-dev
  libspdlog-dev libcli11-dev libgtest-dev libgmock-dev libbenchmark-dev
  clang libclang-rt-14-dev
)
# Node.js and npm drive the client tests. A machine may already have them from another source (e.g. a
# nodejs build that bundles npm, which conflicts with Debian's npm package): install only what is missing.
command -v node >/dev/null 2>&1 || DEB_PACKAGES+=(nodejs)
command -v npm >/dev/null 2>&1 || DEB_PACKAGES+=(npm)
# The aarch64 step of the tests (tests/arm): Debian's cross compiler, qemu user mode, and (multiarch) the arm64
# builds of the libraries its targets link; nlohmann-json, CLI11 and Boost are header-only and shared with the host.
DEB_PACKAGES+=(g++-aarch64-linux-gnu qemu-user-static)
for p in libgtest-dev libgmock-dev libspdlog-dev libpng-dev libjpeg62-turbo-dev libwebp-dev libpcre2-dev zlib1g-dev; do
  DEB_PACKAGES+=("$p:arm64")
done

missing=()
for p in "${DEB_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "setup: installing Debian packages: ${missing[*]}"
  SUDO=""
  [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  export DEBIAN_FRONTEND=noninteractive
  if printf '%s\n' "${missing[@]}" | grep -q ':arm64$' && ! dpkg --print-foreign-architectures | grep -qx arm64; then
    $SUDO dpkg --add-architecture arm64
  fi
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
else
  echo "setup: Debian packages present"
fi

# npm: the real clients and reference implementations the tests drive (tests/npm/package.json).
if [ -f tests/npm/package.json ]; then
  stamp=tests/npm/node_modules/.autoglm-stamp
  want=$(cat tests/npm/package.json tests/npm/package-lock.json 2>/dev/null | sha256sum | cut -d' ' -f1)
  if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
    echo "setup: installing npm test dependencies"
    (cd tests/npm && if [ -f package-lock.json ]; then npm ci --no-audit --no-fund --loglevel=error; else npm install --no-audit --no-fund --loglevel=error; fi)
    echo "$want" > "$stamp"
  else
    echo "setup: npm test dependencies present"
  fi
fi
