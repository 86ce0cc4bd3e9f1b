#!/usr/bin/env bash
# cmake/qemu-aarch64.sh: the CMAKE_CROSSCOMPILING_EMULATOR of cmake/aarch64-linux-gnu.cmake. Runs an aarch64
# program under qemu user mode as the CPU model AUTOGLM_QEMU_CPU (default max: every extension qemu implements,
# so the dispatched NEON dotprod/i8mm/bf16/fp16 paths run). A wrapper rather than a fixed "-cpu max" so the same
# build can be tested as an older core without reconfiguring: AUTOGLM_QEMU_CPU=cortex-a53 ctest ...
set -euo pipefail
qemu=$(command -v qemu-aarch64-static || command -v qemu-aarch64 || true)
if [ -z "$qemu" ]; then
  echo "qemu-aarch64.sh: qemu-aarch64-static not found (scripts/setup.sh installs qemu-user-static)" >&2
  exit 127
fi
exec "$qemu" -cpu "${AUTOGLM_QEMU_CPU:-max}" "$@"
