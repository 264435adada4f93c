#include "veil/data/idx.hpp"

#include "veil/common/error.hpp"

namespace veil::data {

namespace {

std::uint32_t be32(const std::uint8_t* p) {
  return (std::uint32_t{p[0]} << 24) | (std::uint32_t{p[1]} << 16) | (std::uint32_t{p[2]} << 8) | p[3];
}

const char* type_name(std::uint8_t t) {
  switch (t) {
    case 0x08:
      return "unsigned byte";
    case 0x09:
      return "signed byte";
    case 0x0B:
      return "int16";
    case 0x0C:
      return "int32";
    case 0x0D:
      return "float32";
    case 0x0E:
      return "float64";
    default:
      return "unknown";
  }
}

}  // namespace

bool looks_like_idx(std::span<const std::uint8_t> head) {
  if (head.size() < 4 || head[0] != 0 || head[1] != 0) return false;
  const std::uint8_t t = head[2];
  const bool known = t == 0x08 || t == 0x09 || (t >= 0x0B && t <= 0x0E);
  return known && head[3] >= 1 && head[3] <= 4;
}

IdxArray parse_idx(std::span<const std::uint8_t> bytes, const std::string& name) {
  VEIL_CHECK_IO(bytes.size() >= 4, name << ": truncated IDX file (" << bytes.size() << " bytes, no header)");
  VEIL_CHECK_IO(looks_like_idx(bytes), name << ": not an IDX file (magic " << std::hex << be32(bytes.data())
                                            << ", expected 0x0000080N)");
  VEIL_CHECK_IO(bytes[2] == 0x08, name << ": IDX element type 0x" << std::hex << int(bytes[2]) << " ("
                                       << type_name(bytes[2])
                                       << ") is not supported; only unsigned byte (0x08)");
  const int ndims = bytes[3];
  const std::size_t header = 4 + 4 * static_cast<std::size_t>(ndims);
  VEIL_CHECK_IO(bytes.size() >= header,
                name << ": truncated IDX header (" << bytes.size() << " bytes, need " << header << ")");
  IdxArray out;
  // Every data set we read fits well under 2^32 elements; the bound keeps the product from
  // overflowing before it is compared with the file size.
  constexpr std::uint64_t kMaxElements = std::uint64_t{1} << 32;
  std::uint64_t total = 1;
  for (int d = 0; d < ndims; ++d) {
    const std::uint32_t v = be32(bytes.data() + 4 + 4 * d);
    out.dims.push_back(v);
    total *= v;
    VEIL_CHECK_IO(total <= kMaxElements, name << ": IDX dimensions too large (more than 2^32 elements)");
  }
  const std::uint64_t have = bytes.size() - header;
  VEIL_CHECK_IO(have >= total, name << ": truncated IDX file: header promises " << total
                                    << " data bytes, file has " << have);
  VEIL_CHECK_IO(have == total, name << ": IDX file has " << have - total
                                    << " unexpected trailing bytes after " << total << " data bytes");
  out.data = bytes.subspan(header, total);
  return out;
}

std::vector<std::uint8_t> encode_idx(const std::vector<std::uint32_t>& dims,
                                     std::span<const std::uint8_t> data) {
  VEIL_REQUIRE(!dims.empty() && dims.size() <= 4, "encode_idx: 1-4 dimensions, got " << dims.size());
  std::uint64_t total = 1;
  for (auto d : dims) total *= d;
  VEIL_REQUIRE(total == data.size(),
               "encode_idx: dims give " << total << " elements, data has " << data.size());
  std::vector<std::uint8_t> out = {0, 0, 0x08, static_cast<std::uint8_t>(dims.size())};
  for (auto d : dims)
    for (int s = 24; s >= 0; s -= 8) out.push_back(static_cast<std::uint8_t>(d >> s));
  out.insert(out.end(), data.begin(), data.end());
  return out;
}

}  // namespace veil::data
