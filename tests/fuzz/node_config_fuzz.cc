// Fuzz target: the node's YAML configuration and its validation (a ConfigMap is written by people
// and tools). Any text must parse to a validated configuration or an error Status: yaml-cpp's
// exceptions are caught at the parser's edge, and validation never trusts a parsed value.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "config/node_config.h"

// NOLINTNEXTLINE(readability-identifier-naming): libFuzzer names the entry point
extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view yaml(reinterpret_cast<const char*>(data), size);
  auto cfg = kvtier::config::parse_node_config(yaml, "fuzz");
  if (!cfg.ok()) return 0;
  // What `kvtierd --print-config` writes must read back as the same configuration.
  const std::string effective = kvtier::config::to_yaml(*cfg);
  auto again = kvtier::config::parse_node_config(effective, "fuzz (effective)");
  if (!again.ok() || kvtier::config::to_yaml(*again) != effective) __builtin_trap();
  return 0;
}
