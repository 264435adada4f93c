// Moved: the non-interactive protocol's messages are in protocol/ni/messages.hpp, the
// host's (Hello, Error, Bye) in protocol/hello.hpp. This header stays for public_plan
// (restructured separately), which names ServerInfo and kMaxName in this namespace.
#pragma once

#include "veil/protocol/ni/messages.hpp"

namespace veil::protocol {
using ni::kMaxName;
using ni::ServerInfo;
}  // namespace veil::protocol
