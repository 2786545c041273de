# The CUDA copy path (tiers/hbm/cuda_kv_copier.cu) is built when nvcc is found (PATH, CUDACXX or
# /usr/local/cuda) and the build is not a sanitizer build (nvcc cannot instrument device code).
# Without it, make_cuda_kv_copier() answers unavailable and everything else is the same.
# cudart is linked statically: binaries run on machines without the toolkit or a driver, and the
# copier reports "no usable CUDA device" there.
option(KVTIER_CUDA "Build the CUDA copy path when nvcc is found" ON)
set(KVTIER_HAVE_CUDA OFF)
if(KVTIER_CUDA AND KVTIER_SANITIZE STREQUAL "")
  if(NOT DEFINED CMAKE_CUDA_COMPILER AND NOT DEFINED ENV{CUDACXX} AND EXISTS /usr/local/cuda/bin/nvcc)
    set(CMAKE_CUDA_COMPILER /usr/local/cuda/bin/nvcc)
  endif()
  include(CheckLanguage)
  check_language(CUDA)
  if(CMAKE_CUDA_COMPILER)
    if(NOT DEFINED CMAKE_CUDA_ARCHITECTURES)
      set(CMAKE_CUDA_ARCHITECTURES 80-real 90)  # A100; H100/H200, with PTX for newer GPUs
    endif()
    # CMake 3.25 knows nvcc's dialects up to C++17; nvcc 12+ also takes C++20, which kvtier's
    # headers need.
    set(CMAKE_CUDA20_STANDARD_COMPILE_OPTION "-std=c++20")
    set(CMAKE_CUDA20_EXTENSION_COMPILE_OPTION "-std=c++20")
    enable_language(CUDA)
    find_package(CUDAToolkit REQUIRED)
    set(KVTIER_HAVE_CUDA ON)
  endif()
endif()
message(STATUS "kvtier: CUDA copy path ${KVTIER_HAVE_CUDA}")
