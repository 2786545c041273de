// kvtierd's log: spdlog's default logger on stdout, one line per record, as text
// ("2026-01-01T12:00:00.123Z info kvtierd: ...") or JSON objects ({"ts":..,"level":..,"pid":..,
// "msg":..}) that log collectors parse without a custom pattern.
#pragma once

#include <string_view>

#include "kvtier/status.h"

namespace kvtier::daemon {

// level: trace | debug | info | warn | error; format: text | json.
Status configure_logging(std::string_view level, std::string_view format);

}  // namespace kvtier::daemon
