# Every dependency is a Debian 12 package, found here and nowhere else.
# scripts/setup installs the packages; nothing is vendored or downloaded at build time.

find_package(PkgConfig REQUIRED)
find_package(Threads REQUIRED)

# Hashing: XXH3-128 names every block (docs/keys.md).
pkg_check_modules(XXHASH REQUIRED IMPORTED_TARGET libxxhash>=0.8)
# SHA-256 for vLLM's sha256_cbor key profile (kvtier/key_profile.h).
find_package(OpenSSL 3 REQUIRED COMPONENTS Crypto SSL)
# Compression for the SSD tier.
find_package(zstd CONFIG REQUIRED)
# SSD tier I/O.
pkg_check_modules(URING REQUIRED IMPORTED_TARGET liburing>=2.1)
# SSD tier metadata.
find_package(RocksDB CONFIG REQUIRED)
# Shared-memory index and host arena (Boost.Interprocess is header-only).
find_package(Boost 1.74 REQUIRED)
# Daemon services.
find_package(Protobuf REQUIRED)
find_package(gRPC CONFIG REQUIRED)
# Abseil (gRPC's own dependency): hash maps of the cluster index.
find_package(absl CONFIG REQUIRED)
# vLLM interoperability: its KV events are msgpack over ZeroMQ (docs/scheduler.md).
find_package(msgpack CONFIG REQUIRED)
find_package(cppzmq CONFIG REQUIRED)
# Remote reads out of the host arena: UCX (TCP, shared memory, RDMA NICs; docs/transport.md).
pkg_check_modules(UCX REQUIRED IMPORTED_TARGET ucx>=1.13)
# Logging, configuration, command lines.
find_package(fmt CONFIG REQUIRED)
find_package(spdlog CONFIG REQUIRED)
find_package(yaml-cpp CONFIG REQUIRED)
find_package(nlohmann_json 3 CONFIG REQUIRED)  # request traces (JSONL)
find_package(CLI11 CONFIG REQUIRED)
# Tests and benchmarks (hiredis: the Redis baseline of kvtier-bench index).
pkg_check_modules(HIREDIS REQUIRED IMPORTED_TARGET hiredis)
find_package(GTest CONFIG REQUIRED)
find_package(benchmark CONFIG REQUIRED)

# Debian's Python packages belong to /usr/bin/python3; another python3 may come first on PATH.
find_program(KVTIER_PYTHON3 NAMES python3 PATHS /usr/bin NO_DEFAULT_PATH)
if(NOT KVTIER_PYTHON3)
  find_program(KVTIER_PYTHON3 NAMES python3 REQUIRED)
endif()

# The Python package kvtier is assembled here: the binding (client/python) and the gRPC stubs
# (server/proto, kvtier.v1). Set before any subdirectory uses it.
set(KVTIER_PYTHON_STUBS ${CMAKE_BINARY_DIR}/python CACHE INTERNAL "the Python package kvtier in the build tree")

message(STATUS "kvtier deps: xxhash ${XXHASH_VERSION}, liburing ${URING_VERSION}, RocksDB ${RocksDB_VERSION}, "
               "Boost ${Boost_VERSION}, gRPC ${gRPC_VERSION}, protobuf ${Protobuf_VERSION}, "
               "UCX ${UCX_VERSION}, spdlog ${spdlog_VERSION}, yaml-cpp ${yaml-cpp_VERSION}, python ${KVTIER_PYTHON3}")
