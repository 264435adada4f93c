#include "veil/common/format.hpp"

#include <ios>
#include <sstream>

namespace veil {

std::string human_bytes(std::uint64_t bytes) {
  std::ostringstream os;
  os.setf(std::ios::fixed);
  os.precision(1);
  const double b = static_cast<double>(bytes);
  if (b >= 1 << 30)
    os << b / (1 << 30) << " GiB";
  else if (b >= 1 << 20)
    os << b / (1 << 20) << " MiB";
  else if (b >= 1 << 10)
    os << b / (1 << 10) << " KiB";
  else
    os << bytes << " B";
  return os.str();
}

}  // namespace veil
