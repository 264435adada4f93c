#include "veil/data/file_bytes.hpp"

#include <zlib.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <memory>

#include "veil/common/error.hpp"
#include "veil/common/file.hpp"

#ifdef VEIL_HAVE_LZMA
#include <lzma.h>
#endif

namespace veil::data {

namespace {

std::vector<std::uint8_t> gunzip(std::span<const std::uint8_t> in, const std::string& name,
                                 std::size_t max_bytes) {
  z_stream zs{};
  // 16 + MAX_WBITS: expect a gzip header and trailer (CRC and length are checked).
  VEIL_CHECK_IO(inflateInit2(&zs, 16 + MAX_WBITS) == Z_OK, name << ": cannot start gzip decoder");
  std::unique_ptr<z_stream, int (*)(z_stream*)> guard(&zs, inflateEnd);
  VEIL_CHECK_IO(in.size() <= UINT32_MAX, name << ": gzip input over 4 GiB");
  zs.next_in = const_cast<Bytef*>(in.data());
  zs.avail_in = static_cast<uInt>(in.size());
  std::vector<std::uint8_t> out;
  std::uint8_t buf[1 << 16];
  for (;;) {
    zs.next_out = buf;
    zs.avail_out = sizeof buf;
    int rc = inflate(&zs, Z_NO_FLUSH);
    std::size_t produced = sizeof buf - zs.avail_out;
    VEIL_CHECK_IO(out.size() + produced <= max_bytes,
                  name << ": decompressed size exceeds the " << max_bytes << "-byte limit");
    out.insert(out.end(), buf, buf + produced);
    if (rc == Z_STREAM_END) {
      // gzip allows several members back to back (`cat a.gz b.gz`); keep going.
      if (zs.avail_in == 0) break;
      VEIL_CHECK_IO(inflateReset(&zs) == Z_OK, name << ": cannot restart gzip decoder");
      continue;
    }
    // All input consumed, output not full, no end marker: the file was cut short.
    VEIL_CHECK_IO(!((rc == Z_OK || rc == Z_BUF_ERROR) && zs.avail_in == 0 && zs.avail_out > 0),
                  name << ": gzip data truncated (stream ends early)");
    VEIL_CHECK_IO(rc == Z_OK, name << ": corrupt gzip data ("
                                   << (zs.msg ? zs.msg : "zlib error " + std::to_string(rc)) << ")");
  }
  return out;
}

#ifdef VEIL_HAVE_LZMA
std::vector<std::uint8_t> unxz(std::span<const std::uint8_t> in, const std::string& name,
                               std::size_t max_bytes) {
  lzma_stream zs = LZMA_STREAM_INIT;
  VEIL_CHECK_IO(lzma_stream_decoder(&zs, UINT64_MAX, LZMA_CONCATENATED) == LZMA_OK,
                name << ": cannot start xz decoder");
  std::unique_ptr<lzma_stream, void (*)(lzma_stream*)> guard(&zs, lzma_end);
  zs.next_in = in.data();
  zs.avail_in = in.size();
  std::vector<std::uint8_t> out;
  std::uint8_t buf[1 << 16];
  for (;;) {
    zs.next_out = buf;
    zs.avail_out = sizeof buf;
    // LZMA_CONCATENATED needs LZMA_FINISH once all input is handed over.
    lzma_ret rc = lzma_code(&zs, zs.avail_in == 0 ? LZMA_FINISH : LZMA_RUN);
    std::size_t produced = sizeof buf - zs.avail_out;
    VEIL_CHECK_IO(out.size() + produced <= max_bytes,
                  name << ": decompressed size exceeds the " << max_bytes << "-byte limit");
    out.insert(out.end(), buf, buf + produced);
    if (rc == LZMA_STREAM_END) break;
    VEIL_CHECK_IO(rc != LZMA_BUF_ERROR, name << ": xz data truncated (stream ends early)");
    VEIL_CHECK_IO(rc == LZMA_OK, name << ": corrupt xz data (liblzma error " << rc << ")");
  }
  return out;
}
#endif

}  // namespace

Compression detect_compression(std::span<const std::uint8_t> head) {
  static constexpr std::uint8_t kXzMagic[6] = {0xfd, '7', 'z', 'X', 'Z', 0x00};
  if (head.size() >= 2 && head[0] == 0x1f && head[1] == 0x8b) return Compression::kGzip;
  if (head.size() >= 6 && std::memcmp(head.data(), kXzMagic, 6) == 0) return Compression::kXz;
  return Compression::kNone;
}

std::vector<std::uint8_t> decompress(std::span<const std::uint8_t> bytes, Compression kind,
                                     const std::string& name, std::size_t max_bytes) {
  if (kind == Compression::kGzip) return gunzip(bytes, name, max_bytes);
  if (kind == Compression::kXz) {
#ifdef VEIL_HAVE_LZMA
    return unxz(bytes, name, max_bytes);
#else
    VEIL_CHECK_IO(false, name << " is xz-compressed and this build has no liblzma; "
                                 "decompress it first with `xz -dk "
                              << name << "`");
#endif
  }
  VEIL_CHECK_IO(bytes.size() <= max_bytes, name << ": larger than the " << max_bytes << "-byte limit");
  return {bytes.begin(), bytes.end()};
}

std::vector<std::uint8_t> read_file_bytes(const std::string& path, std::size_t max_bytes) {
  // Compressed input is bounded too: it cannot exceed the decompressed limit by much.
  std::vector<std::uint8_t> raw = veil::read_file(path, max_bytes);
  Compression kind = detect_compression(raw);
  if (kind == Compression::kNone) return raw;
  return decompress(raw, kind, path, max_bytes);
}

}  // namespace veil::data
