// The byte form of a layout (packing.hpp): the non-interactive protocol's server
// announcement carries the input and output layouts in it, and the plan cache every
// stage's. A file of its own so that the protocol's fuzz build, which has no nn library,
// compiles it in beside the message code.
#include "veil/common/error.hpp"
#include "veil/nn/he/packing.hpp"

namespace veil::nn {

void write_layout(ByteWriter& w, const Layout& l) {
  for (int v : {l.shape.c, l.shape.h, l.shape.w}) w.u32(static_cast<std::uint32_t>(v));
  w.u64(l.slots);
  for (int v : {l.channel_stride, l.row_stride, l.col_stride, l.channels_per_block, l.replicas,
                l.replica_stride, l.mux_rows, l.mux_cols, l.mux_row_stride, l.mux_col_stride, l.copy_rows,
                l.copy_cols, l.copy_row_stride, l.copy_col_stride})
    w.u32(static_cast<std::uint32_t>(v));
}

Layout read_layout(ByteReader& r, const char* what) {
  auto get = [&r] { return static_cast<int>(static_cast<std::int32_t>(r.u32())); };
  Layout l;
  l.shape.c = get();
  l.shape.h = get();
  l.shape.w = get();
  VEIL_CHECK_IO(l.shape.within_limits(),
                what << ": bad shape " << l.shape.c << "x" << l.shape.h << "x" << l.shape.w);
  l.slots = r.u64();
  for (int* v : {&l.channel_stride, &l.row_stride, &l.col_stride, &l.channels_per_block, &l.replicas,
                 &l.replica_stride, &l.mux_rows, &l.mux_cols, &l.mux_row_stride, &l.mux_col_stride,
                 &l.copy_rows, &l.copy_cols, &l.copy_row_stride, &l.copy_col_stride})
    *v = get();
  VEIL_CHECK_IO(
      l.slots >= 1 && l.slots <= (std::uint64_t{1} << 16) && l.channel_stride >= 0 && l.row_stride >= 0 &&
          l.col_stride >= 0 && l.channels_per_block >= 1 && l.replicas >= 1 &&
          static_cast<std::uint64_t>(l.replicas) <= l.slots && l.replica_stride >= 0 && l.mux_rows >= 1 &&
          l.mux_cols >= 1 && std::int64_t{l.mux_rows} * l.mux_cols <= l.channels_per_block &&
          l.channels_per_block % (l.mux_rows * l.mux_cols) == 0 && l.mux_row_stride >= 0 &&
          l.mux_col_stride >= 0 && l.copy_rows >= 1 && l.copy_cols >= 1 &&
          static_cast<std::uint64_t>(l.copy_rows) * static_cast<std::uint64_t>(l.copy_cols) <= l.slots &&
          l.copy_row_stride >= 0 && l.copy_col_stride >= 0,
      what << ": bad layout");
  return l;
}

}  // namespace veil::nn
