#include "veil/common/file.hpp"

#include <sys/stat.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <memory>

#include "veil/common/error.hpp"

namespace veil {

namespace {
struct FileCloser {
  void operator()(std::FILE* f) const { std::fclose(f); }
};
}  // namespace

Bytes read_file(const std::string& path, std::size_t max_bytes) {
  std::unique_ptr<std::FILE, FileCloser> f(std::fopen(path.c_str(), "rb"));
  VEIL_CHECK_IO(f != nullptr, "cannot open " << path << ": " << std::strerror(errno)
                                             << " (does the file exist and is it readable?)");
  Bytes out;
  // Regular files: one allocation of the right size, refused before it is made when too
  // large. Pipes and devices have no size and grow the buffer as they are read.
  struct stat st {};
  if (::fstat(::fileno(f.get()), &st) == 0 && S_ISREG(st.st_mode)) {
    const auto size = static_cast<std::size_t>(st.st_size);
    VEIL_CHECK_IO(size <= max_bytes,
                  path << " is " << size << " bytes, more than the limit of " << max_bytes);
    out.reserve(size);
  }
  std::uint8_t buf[1 << 16];
  for (;;) {
    const std::size_t n = std::fread(buf, 1, sizeof buf, f.get());
    VEIL_CHECK_IO(out.size() + n <= max_bytes,
                  path << ": file larger than the " << max_bytes << "-byte limit");
    out.insert(out.end(), buf, buf + n);
    if (n < sizeof buf) break;
  }
  VEIL_CHECK_IO(!std::ferror(f.get()), "error reading " << path << ": " << std::strerror(errno));
  return out;
}

void write_file(const std::string& path, std::span<const std::uint8_t> bytes) {
  std::unique_ptr<std::FILE, FileCloser> f(std::fopen(path.c_str(), "wb"));
  VEIL_CHECK_IO(f != nullptr, "cannot open " << path << " for writing: " << std::strerror(errno));
  VEIL_CHECK_IO(std::fwrite(bytes.data(), 1, bytes.size(), f.get()) == bytes.size(),
                "failed writing " << path << ": " << std::strerror(errno));
  VEIL_CHECK_IO(std::fclose(f.release()) == 0, "failed writing " << path << ": " << std::strerror(errno));
}

}  // namespace veil
