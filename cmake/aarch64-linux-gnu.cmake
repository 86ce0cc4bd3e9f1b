# cmake/aarch64-linux-gnu.cmake: cross toolchain for 64-bit ARM Linux/Android-class CPUs with Debian's
# g++-aarch64-linux-gnu and the arm64 multiarch -dev packages (scripts/setup.sh installs both; the `arm` preset
# and tests/arm/run_arm_tests.sh use it). Programs run under qemu user mode (cmake/qemu-aarch64.sh, -cpu max by
# default) through CMAKE_CROSSCOMPILING_EMULATOR, so gtest_discover_tests and ctest work unchanged.
# No sysroot: Debian multiarch keeps arm64 headers and libraries in /usr/{include,lib}/aarch64-linux-gnu beside
# the host's, and CMAKE_LIBRARY_ARCHITECTURE steers every find_* there. The code is compiled for the ARMv8.0
# baseline (no -march): ARMv8.2+ kernels are chosen at run time (src/kernels/cpu/cpu_features_arm.h).
set(CMAKE_SYSTEM_NAME Linux)
set(CMAKE_SYSTEM_PROCESSOR aarch64)
set(CMAKE_LIBRARY_ARCHITECTURE aarch64-linux-gnu)

set(CMAKE_C_COMPILER aarch64-linux-gnu-gcc)
set(CMAKE_CXX_COMPILER aarch64-linux-gnu-g++)

# pkg-config must read the arm64 .pc files only (the host's would hand the linker x86-64 libraries).
set(ENV{PKG_CONFIG_LIBDIR} "/usr/lib/aarch64-linux-gnu/pkgconfig:/usr/share/pkgconfig")
set(ENV{PKG_CONFIG_PATH} "")

set(CMAKE_CROSSCOMPILING_EMULATOR "${CMAKE_CURRENT_LIST_DIR}/qemu-aarch64.sh")
