# Warning, optimisation and sanitizer flags shared by every kvtier target.
# Targets opt in through the kvtier_options interface library, so third-party headers
# (included as SYSTEM) never trip -Werror.

add_library(kvtier_options INTERFACE)
target_compile_options(kvtier_options INTERFACE -Wall -Wextra -Wpedantic -Wshadow
                                                -Wnon-virtual-dtor -Wno-missing-field-initializers)
# GCC 12 reports impossible overlaps in inlined std::string appends at -O3 (GCC bug 105651);
# the warning is fixed in GCC 13, so it is silenced only for older GCC.
if(CMAKE_CXX_COMPILER_ID STREQUAL "GNU" AND CMAKE_CXX_COMPILER_VERSION VERSION_LESS 13)
  target_compile_options(kvtier_options INTERFACE -Wno-restrict)
endif()
if(KVTIER_WERROR)
  target_compile_options(kvtier_options INTERFACE -Werror)
endif()

if(KVTIER_SANITIZE STREQUAL "address")
  set(_kvtier_san -fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer)
elseif(KVTIER_SANITIZE STREQUAL "thread")
  set(_kvtier_san -fsanitize=thread -fno-omit-frame-pointer)
elseif(KVTIER_SANITIZE STREQUAL "fuzz")
  # libFuzzer's coverage instrumentation on every object, ASan+UBSan as in `address`; the fuzz
  # targets themselves link -fsanitize=fuzzer (tests/fuzz). clang only.
  if(NOT CMAKE_CXX_COMPILER_ID STREQUAL "Clang")
    message(FATAL_ERROR "KVTIER_SANITIZE=fuzz needs clang (the `fuzz` preset uses clang++-14)")
  endif()
  add_compile_options(-fsanitize=fuzzer-no-link,address,undefined -fno-sanitize-recover=undefined
                      -fno-omit-frame-pointer)
  add_link_options(-fsanitize=address,undefined)
elseif(NOT KVTIER_SANITIZE STREQUAL "")
  message(FATAL_ERROR "KVTIER_SANITIZE must be '', 'address', 'thread' or 'fuzz', not '${KVTIER_SANITIZE}'")
endif()
if(_kvtier_san)
  # Applied globally so every object, including test mains, carries the instrumentation.
  add_compile_options(${_kvtier_san})
  add_link_options(${_kvtier_san})
endif()
