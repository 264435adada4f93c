// Evaluation keys of all sessions, of every protocol the host serves, under one byte cap.
// Keyed by the hash of the keys' serialised bytes and a scope (the protocol and mode they
// were checked against: "ni/latency"), so a repeat session whose keys are still cached
// sends only the hash. A session holds a reference to its keys; unreferenced entries are
// evicted least recently used when the cap needs room, and when keys held by live
// sessions leave no room the insertion is refused (server busy).
#pragma once

#include <array>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>

namespace veil::protocol {

using KeyHash = std::array<std::uint8_t, 32>;

class KeyCache {
 public:
  explicit KeyCache(std::uint64_t max_bytes) : cap_(max_bytes) {}

  template <class T>
  std::shared_ptr<const T> find(const KeyHash& hash, const std::string& scope) {
    return std::static_pointer_cast<const T>(find_any(hash, scope));
  }
  // Caches `keys` (bytes: their size in memory) unless an entry exists already, and returns
  // the cached entry. Throws net::Error(kBusy) when live sessions' keys leave no room.
  template <class T>
  std::shared_ptr<const T> insert(const KeyHash& hash, const std::string& scope, T keys,
                                  std::uint64_t bytes) {
    return std::static_pointer_cast<const T>(
        insert_any(hash, scope, std::make_shared<const T>(std::move(keys)), bytes));
  }

  std::uint64_t max_bytes() const { return cap_; }
  std::uint64_t used_bytes();

 private:
  std::shared_ptr<const void> find_any(const KeyHash& hash, const std::string& scope);
  std::shared_ptr<const void> insert_any(const KeyHash& hash, const std::string& scope,
                                         std::shared_ptr<const void> keys, std::uint64_t bytes);
  struct Entry {
    std::shared_ptr<const void> keys;
    std::uint64_t bytes = 0, last_used = 0;
  };
  std::mutex m_;
  std::map<std::pair<KeyHash, std::string>, Entry> entries_;
  std::uint64_t cap_, used_ = 0, tick_ = 0;
};

}  // namespace veil::protocol
