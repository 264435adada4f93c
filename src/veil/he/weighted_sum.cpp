#include "veil/he/weighted_sum.hpp"

#include <algorithm>
#include <cmath>
#include <map>

#include "veil/common/error.hpp"
#include "veil/common/thread_pool.hpp"
#include "veil/he/mac.hpp"

namespace veil::he {

using ckks::Ciphertext;

WeightedSum::WeightedSum(ckks::ContextPtr ctx, SparseWeights weights, int level, double weight_scale)
    : ctx_(std::move(ctx)), m_(weights), level_(level) {
  VEIL_REQUIRE(level >= 0, "weighted sum: level " << level << " is negative");
  VEIL_REQUIRE(m_.row_ptr.size() == static_cast<std::size_t>(m_.rows) + 1 && m_.col.size() == m_.val.size(),
               "weighted sum: malformed sparse weights");
  VEIL_REQUIRE(weight_scale == 0 || (std::isfinite(weight_scale) && weight_scale >= 1),
               "weighted sum: weight scale must be >= 1, got " << weight_scale);
  weight_scale_ = weight_scale > 0 ? weight_scale : static_cast<double>(ctx_->modulus(level).value());
  const double w_scale = weight_scale_;
  const std::size_t nnz = m_.val.size();
  residues_.assign(static_cast<std::size_t>(level) + 1, std::vector<u64>(nnz));
  parallel_for(residues_.size(), [&](std::size_t i) {
    for (std::size_t k = 0; k < nnz; ++k) residues_[i][k] = ctx_->modulus(i).from_double(m_.val[k] * w_scale);
  });
  small_.resize(nnz);
  for (std::size_t k = 0; k < nnz; ++k) {
    const double v = std::nearbyint(m_.val[k] * w_scale);
    if (!(std::fabs(v) < 2147483648.0)) {
      small_.clear();
      break;
    }
    small_[k] = static_cast<std::int32_t>(v);
  }
  // Rows with identical column lists, in blocks of up to 8: a dense layer is one group, a
  // convolution one group per output position (its channels). Each block reads its inputs
  // once for all its rows (he::mac_scalar_rows).
  std::map<std::vector<int>, std::vector<int>> groups;
  for (int o = 0; o < m_.rows; ++o)
    groups[std::vector<int>(m_.col.begin() + m_.row_ptr[o], m_.col.begin() + m_.row_ptr[o + 1])].push_back(o);
  constexpr std::size_t kBlock = 8;
  for (const auto& [cols, rows] : groups)
    for (std::size_t r = 0; r < rows.size(); r += kBlock)
      blocks_.emplace_back(rows.begin() + r, rows.begin() + std::min(rows.size(), r + kBlock));
}

Ciphertext WeightedSum::accumulator(const std::vector<Ciphertext>& in) const {
  return Ciphertext(*ctx_, in[0].size(), level_, in[0].scale() * weight_scale_, in[0].slots());
}

void WeightedSum::accumulate_rows(std::span<const int> rows, std::span<const u64* const> src, std::size_t i,
                                  std::size_t base, std::size_t len, std::span<Ciphertext* const> out) const {
  const auto begin = m_.row_ptr[rows[0]], end = m_.row_ptr[rows[0] + 1];
  const std::size_t polys = out[0]->size(), terms = static_cast<std::size_t>(end - begin);
  std::vector<const u64*> x(terms * polys), wr(rows.size());
  std::vector<u64*> outs(rows.size() * polys);
  for (std::size_t t = 0; t < terms; ++t)
    for (std::size_t p = 0; p < polys; ++p)
      x[t * polys + p] = src[static_cast<std::size_t>(m_.col[begin + t]) * polys + p];
  for (std::size_t r = 0; r < rows.size(); ++r)
    for (std::size_t p = 0; p < polys; ++p) outs[r * polys + p] = out[r]->limb(p, i) + base;
  const math::Modulus& q = ctx_->modulus(i);
  if (q.value() >= (u64{1} << 32) && !small_.empty()) {
    std::vector<const std::int32_t*> ws(rows.size());
    for (std::size_t r = 0; r < rows.size(); ++r) ws[r] = small_.data() + m_.row_ptr[rows[r]];
    mac_scalar_rows_signed(q, len, rows.size(), terms, ws.data(), x, polys, outs.data());
    return;
  }
  for (std::size_t r = 0; r < rows.size(); ++r) wr[r] = residues_[i].data() + m_.row_ptr[rows[r]];
  mac_scalar_rows(q, len, rows.size(), terms, wr.data(), x, polys, outs.data());
}

std::vector<Ciphertext> WeightedSum::apply(const std::vector<Ciphertext>& in) const {
  VEIL_REQUIRE(!in.empty() && in[0].level() == level_, "weighted sum: inputs must be at level "
                                                           << level_
                                                           << " (the level the weights were built for)");
  std::vector<Ciphertext> out(static_cast<std::size_t>(m_.rows));
  for (auto& c : out) c = accumulator(in);
  // Tile by tile: the coefficients [base, base + tile) of every input are first copied
  // into one contiguous buffer, so the blocks of rows then read them from L2 rather than
  // touching one page per input (thousands of TLB entries) for every block.
  constexpr std::size_t kTile = 32;
  const std::size_t n = ctx_->n(), limbs = in[0].num_limbs();
  const std::size_t tiles = (n + kTile - 1) / kTile;
  parallel_for(limbs * tiles, [&](std::size_t job) {
    const std::size_t i = job / tiles, base = (job % tiles) * kTile, len = std::min(kTile, n - base);
    const std::size_t polys = in[0].size();
    thread_local std::vector<u64> packed;
    packed.resize(in.size() * polys * kTile);
    std::vector<const u64*> src(in.size() * polys);
    for (std::size_t c = 0; c < in.size(); ++c)
      for (std::size_t p = 0; p < polys; ++p) {
        u64* dst = packed.data() + (c * polys + p) * kTile;
        std::copy_n(in[c].limb(p, i) + base, len, dst);
        src[c * polys + p] = dst;
      }
    std::vector<Ciphertext*> outs;
    for (const auto& rows : blocks_) {
      outs.clear();
      for (int o : rows) outs.push_back(&out[static_cast<std::size_t>(o)]);
      accumulate_rows(rows, src, i, base, len, outs);
    }
  });
  return out;
}

Ciphertext WeightedSum::apply_row(int r, const std::vector<Ciphertext>& in) const {
  VEIL_REQUIRE(r >= 0 && r < m_.rows, "weighted sum: row " << r << " out of range");
  VEIL_REQUIRE(!in.empty() && in[0].level() == level_, "weighted sum: inputs must be at level "
                                                           << level_
                                                           << " (the level the weights were built for)");
  Ciphertext v = accumulator(in);
  Ciphertext* vp = &v;
  const std::size_t polys = in[0].size();
  // Only this row's columns are read, so the pointer table holds just those inputs.
  std::vector<const u64*> src(in.size() * polys, nullptr);
  for (std::size_t i = 0; i < v.num_limbs(); ++i) {
    for (auto e = m_.row_ptr[r]; e < m_.row_ptr[r + 1]; ++e) {
      const auto col = static_cast<std::size_t>(m_.col[e]);
      for (std::size_t p = 0; p < polys; ++p) src[col * polys + p] = in[col].limb(p, i);
    }
    accumulate_rows({&r, 1}, src, i, 0, ctx_->n(), {&vp, 1});
  }
  return v;
}

}  // namespace veil::he
