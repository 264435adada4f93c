#include "veil/protocol/key_cache.hpp"

#include "veil/common/format.hpp"
#include "veil/protocol/error.hpp"

namespace veil::protocol {

std::uint64_t KeyCache::used_bytes() {
  std::lock_guard lk(m_);
  return used_;
}

std::shared_ptr<const void> KeyCache::find_any(const KeyHash& hash, const std::string& scope) {
  std::lock_guard lk(m_);
  auto it = entries_.find({hash, scope});
  if (it == entries_.end()) return nullptr;
  it->second.last_used = ++tick_;
  return it->second.keys;
}

std::shared_ptr<const void> KeyCache::insert_any(const KeyHash& hash, const std::string& scope,
                                                 std::shared_ptr<const void> keys, std::uint64_t bytes) {
  std::lock_guard lk(m_);
  if (auto it = entries_.find({hash, scope}); it != entries_.end()) return it->second.keys;
  while (used_ + bytes > cap_) {
    // Only entries no session references (the cache's own pointer is the last one).
    auto victim = entries_.end();
    for (auto it = entries_.begin(); it != entries_.end(); ++it)
      if (it->second.keys.use_count() == 1 &&
          (victim == entries_.end() || it->second.last_used < victim->second.last_used))
        victim = it;
    if (victim == entries_.end())
      throw error(ErrorCode::kBusy, "the key cache is full (" + human_bytes(used_) + " of " +
                                        human_bytes(cap_) + " held by active sessions; these keys need " +
                                        human_bytes(bytes) + "); try again later");
    used_ -= victim->second.bytes;
    entries_.erase(victim);
  }
  entries_[{hash, scope}] = Entry{keys, bytes, ++tick_};
  used_ += bytes;
  return keys;
}

}  // namespace veil::protocol
