// Two connected channels in one process: what one end sends, the other receives. Tests run
// both roles of a protocol on two threads over a pair (emp-toolkit's and EzPC-SCI's
// in-memory IO), with the same frame limits, timeouts, interruption and byte and round
// counts as TCP, so a test with a stalled or failed role ends with an error instead of
// hanging.
#pragma once

#include <memory>
#include <utility>

#include "veil/net/channel.hpp"

namespace veil::net {

// Thread-safe: each end may be driven by its own thread (and interrupted from any).
// Frames are queued whole without bound (tests send what they will receive); counters
// include the 16-byte header each frame would have on the wire, so both transports count
// the same bytes. Closing one end (or destroying it) makes the other's receive fail with
// kClosed once it has read what was already sent.
std::pair<std::unique_ptr<Channel>, std::unique_ptr<Channel>> make_memory_pair(
    const ChannelOptions& options = {});

}  // namespace veil::net
