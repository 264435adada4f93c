// Little-endian byte writer and bounds-checked reader used by every serialiser.
// The reader never trusts a length it reads: callers pass the largest value they accept,
// and the reader checks it against both that bound and the bytes actually remaining
// before anything is allocated (SEAL's load discipline).
#pragma once

#include <cstdint>
#include <cstring>
#include <span>
#include <stdexcept>
#include <string>
#include <vector>

#include "veil/common/error.hpp"

namespace veil {

// The one byte-buffer type of every serialiser, file and wire message.
using Bytes = std::vector<std::uint8_t>;

class ByteWriter {
 public:
  void u8(std::uint8_t v) { buf_.push_back(v); }
  void u16(std::uint16_t v) { raw(&v, sizeof v); }
  void u32(std::uint32_t v) { raw(&v, sizeof v); }
  void u64(std::uint64_t v) { raw(&v, sizeof v); }
  void f64(double v) { raw(&v, sizeof v); }
  void bytes(std::span<const std::uint8_t> b) { raw(b.data(), b.size()); }
  void u64s(std::span<const std::uint64_t> v) { raw(v.data(), v.size() * sizeof(std::uint64_t)); }
  void str(const std::string& s) {
    u32(static_cast<std::uint32_t>(s.size()));
    raw(s.data(), s.size());
  }
  // resize + memcpy rather than vector::insert, and an explicit size bound: without them
  // GCC 12 reports false -Wstringop-overflow warnings for the inlined copy (impossible
  // sizes near 2^64), which -Werror would turn into build failures. No serialised object
  // comes near 2^48 bytes.
  void raw(const void* p, std::size_t n) {
    if (n == 0) return;
    if (n > (std::size_t{1} << 48)) throw std::length_error("ByteWriter: object too large");
    const std::size_t old = buf_.size();
    buf_.resize(old + n);
    std::memcpy(buf_.data() + old, p, n);
  }
  // Packs values of `bits` bits each (1..64) densely; used for residues mod a prime.
  void packed(std::span<const std::uint64_t> v, unsigned bits);

  std::size_t size() const { return buf_.size(); }
  std::vector<std::uint8_t>& buffer() { return buf_; }
  std::vector<std::uint8_t> take() { return std::move(buf_); }

 private:
  std::vector<std::uint8_t> buf_;
};

class ByteReader {
 public:
  explicit ByteReader(std::span<const std::uint8_t> data) : data_(data) {}

  std::uint8_t u8() { return scalar<std::uint8_t>(); }
  std::uint16_t u16() { return scalar<std::uint16_t>(); }
  std::uint32_t u32() { return scalar<std::uint32_t>(); }
  std::uint64_t u64() { return scalar<std::uint64_t>(); }
  double f64() { return scalar<double>(); }
  std::string str(std::size_t max_len) {
    std::uint32_t n = u32();
    VEIL_CHECK_IO(n <= max_len, "string of " << n << " bytes exceeds limit " << max_len);
    need(n);
    std::string s(reinterpret_cast<const char*>(data_.data() + pos_), n);
    pos_ += n;
    return s;
  }
  void raw(void* out, std::size_t n) {
    need(n);
    std::memcpy(out, data_.data() + pos_, n);
    pos_ += n;
  }
  std::span<const std::uint8_t> view(std::size_t n) {
    need(n);
    auto s = data_.subspan(pos_, n);
    pos_ += n;
    return s;
  }
  void u64s(std::span<std::uint64_t> out) { raw(out.data(), out.size() * sizeof(std::uint64_t)); }
  void packed(std::span<std::uint64_t> out, unsigned bits);

  std::size_t remaining() const { return data_.size() - pos_; }
  std::size_t position() const { return pos_; }
  void expect_end() const {
    VEIL_CHECK_IO(pos_ == data_.size(), (data_.size() - pos_) << " unexpected trailing bytes");
  }
  void need(std::size_t n) const {
    VEIL_CHECK_IO(n <= data_.size() - pos_,
                  "input truncated: need " << n << " bytes, " << (data_.size() - pos_) << " left");
  }

 private:
  template <class T>
  T scalar() {
    T v;
    raw(&v, sizeof v);
    return v;
  }
  std::span<const std::uint8_t> data_;
  std::size_t pos_ = 0;
};

// Lower-case hexadecimal, two digits a byte (hashes and ids in file names and logs).
std::string hex(std::span<const std::uint8_t> bytes);

}  // namespace veil
