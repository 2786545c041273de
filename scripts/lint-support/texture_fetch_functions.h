// Empty on purpose. clang's CUDA wrapper (__clang_cuda_runtime_wrapper.h, clang 19) still includes
// this header, which CUDA 12 removed; scripts/lint puts this directory on the include path so that
// clang-tidy can parse the CUDA sources with the installed toolkit. kvtier uses no texture fetches.
