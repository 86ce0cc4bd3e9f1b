# cmake/autoglm_cuda.cmake: finds the CUDA toolkit for the CUDA backend (src/kernels/cuda) and enables the CUDA
# language. The toolkit installs nvcc outside PATH (/usr/local/cuda/bin), so nvcc is looked for there too, and in
# $CUDA_HOME / $CUDA_PATH; CUDACXX or -DCMAKE_CUDA_COMPILER=... override the search. Sets AUTOGLM_HAVE_CUDA.
#
# CMAKE_CUDA_ARCHITECTURES defaults to "89;90" (RTX 4090, H100/H200): two real architectures keep the build short
# on a 2-core CI machine. Override it for other cards, e.g. -DCMAKE_CUDA_ARCHITECTURES=80 (A100) or "native".
set(AUTOGLM_HAVE_CUDA OFF)
if(NOT CMAKE_CUDA_COMPILER AND NOT DEFINED ENV{CUDACXX})
  find_program(AUTOGLM_NVCC nvcc
               HINTS ENV CUDA_HOME ENV CUDA_PATH
               PATH_SUFFIXES bin
               PATHS /usr/local/cuda/bin /opt/cuda/bin)
  if(AUTOGLM_NVCC)
    set(CMAKE_CUDA_COMPILER "${AUTOGLM_NVCC}" CACHE FILEPATH "CUDA compiler (found by cmake/autoglm_cuda.cmake)")
  endif()
endif()
if(NOT CMAKE_CUDA_COMPILER AND NOT DEFINED ENV{CUDACXX})
  message(STATUS "autoglm: no nvcc found (PATH, CUDA_HOME, CUDA_PATH, /usr/local/cuda): CUDA backend off")
  return()
endif()
# Before enable_language: CMake's own default (the compiler's oldest architecture) is not what we ship.
if(NOT DEFINED CMAKE_CUDA_ARCHITECTURES OR CMAKE_CUDA_ARCHITECTURES STREQUAL "")
  set(CMAKE_CUDA_ARCHITECTURES "89;90" CACHE STRING "CUDA architectures to compile for (89: RTX 4090, 90: H100/H200)" FORCE)
endif()
enable_language(CUDA)
find_package(CUDAToolkit REQUIRED)
# CMake before 3.26 knows no C++20 flag for nvcc (which has taken -std=c++20 since CUDA 12): tell it.
if(NOT DEFINED CMAKE_CUDA20_STANDARD_COMPILE_OPTION OR CMAKE_CUDA20_STANDARD_COMPILE_OPTION STREQUAL "")
  set(CMAKE_CUDA20_STANDARD_COMPILE_OPTION "-std=c++20")
  set(CMAKE_CUDA20_EXTENSION_COMPILE_OPTION "-std=c++20")
endif()
set(CMAKE_CUDA_STANDARD 20)
set(CMAKE_CUDA_STANDARD_REQUIRED ON)
set(CMAKE_CUDA_EXTENSIONS OFF)
if(AUTOGLM_CCACHE AND NOT CMAKE_CUDA_COMPILER_LAUNCHER)
  set(CMAKE_CUDA_COMPILER_LAUNCHER ${AUTOGLM_CCACHE})
endif()
# Host-compiler warnings as for C++ (the top-level options are C/C++ only: nvcc does not take -Wall itself).
add_compile_options("$<$<COMPILE_LANGUAGE:CUDA>:-Xcompiler=-Wall,-Wextra,-Wno-unused-parameter>")
if(AUTOGLM_WERROR)
  add_compile_options("$<$<COMPILE_LANGUAGE:CUDA>:-Werror=all-warnings>")
endif()
set(AUTOGLM_HAVE_CUDA ON)
message(STATUS "autoglm: CUDA backend on (nvcc ${CMAKE_CUDA_COMPILER_VERSION}, architectures ${CMAKE_CUDA_ARCHITECTURES})")
