#include "veil/he/linear_transform.hpp"

#include <algorithm>
#include <cmath>
#include <map>

#include "veil/common/error.hpp"
#include "veil/common/thread_pool.hpp"
#include "veil/he/mac.hpp"

namespace veil::he {

using ckks::Ciphertext;
using ckks::Plaintext;
using math::u64;

namespace {

// Limb i of both polynomials of every term, as the MAC kernels take them.
std::vector<const u64*> limb_inputs(const std::vector<const Ciphertext*>& cts, std::size_t i) {
  std::vector<const u64*> x(2 * cts.size());
  for (std::size_t t = 0; t < cts.size(); ++t) {
    x[2 * t] = cts[t]->limb(0, i);
    x[2 * t + 1] = cts[t]->limb(1, i);
  }
  return x;
}

// acc = sum_t pt_t * ct_t, one limb per task (he/mac.hpp).
void multiply_accumulate(const ckks::CkksContext& ctx, const std::vector<const Plaintext*>& pts,
                         const std::vector<const Ciphertext*>& cts, Ciphertext& out) {
  parallel_for(out.num_limbs(), [&](std::size_t i) {
    const std::vector<const u64*> x = limb_inputs(cts, i);
    std::vector<const u64*> w(pts.size());
    for (std::size_t t = 0; t < pts.size(); ++t) w[t] = pts[t]->limb(i);
    u64* o[2] = {out.limb(0, i), out.limb(1, i)};
    mac_pointwise(ctx.modulus(i), ctx.n(), w, x, 2, o);
  });
}

// The same over cached diagonals: packed limbs through the packed kernel.
void multiply_accumulate(const ckks::CkksContext& ctx, const std::vector<PackedPlaintext>& pts,
                         const std::vector<const Ciphertext*>& cts, Ciphertext& out) {
  parallel_for(out.num_limbs(), [&](std::size_t i) {
    const std::vector<const u64*> x = limb_inputs(cts, i);
    u64* o[2] = {out.limb(0, i), out.limb(1, i)};
    if (pts[0].packed(i)) {
      std::vector<PackedRow> w(pts.size());
      for (std::size_t t = 0; t < pts.size(); ++t) w[t] = pts[t].row(i);
      mac_pointwise_packed(ctx.modulus(i), ctx.n(), w, x, 2, o);
    } else {
      std::vector<const u64*> w(pts.size());
      for (std::size_t t = 0; t < pts.size(); ++t) w[t] = pts[t].raw(i);
      mac_pointwise(ctx.modulus(i), ctx.n(), w, x, 2, o);
    }
  });
}

}  // namespace

PackedPlaintext::PackedPlaintext(const ckks::CkksContext& ctx, const Plaintext& p)
    : scale_(p.scale()), n_(ctx.n()), index_(p.num_limbs()) {
  int packed = 0, raw = 0;
  for (std::size_t i = 0; i < index_.size(); ++i)
    index_[i] = packable(ctx.modulus(i)) ? packed++ : -1 - raw++;
  lo_.resize(static_cast<std::size_t>(packed) * n_);
  hi_.resize(static_cast<std::size_t>(packed) * hi_stride());
  raw_.resize(static_cast<std::size_t>(raw) * n_);
  for (std::size_t i = 0; i < index_.size(); ++i) {
    if (index_[i] >= 0) {
      const auto k = static_cast<std::size_t>(index_[i]);
      pack_residues(p.limb(i), n_, lo_.data() + k * n_, hi_.data() + k * hi_stride());
    } else {
      std::copy(p.limb(i), p.limb(i) + n_, raw_.begin() + static_cast<std::ptrdiff_t>((-1 - index_[i]) * n_));
    }
  }
}

PackedRow PackedPlaintext::row(std::size_t limb) const {
  const auto k = static_cast<std::size_t>(index_[limb]);
  return {lo_.data() + k * n_, hi_.data() + k * hi_stride()};
}

const u64* PackedPlaintext::raw(std::size_t limb) const {
  return raw_.data() + static_cast<std::size_t>(-1 - index_[limb]) * n_;
}

std::size_t PackedPlaintext::bytes() const {
  return lo_.size() * sizeof(std::uint32_t) + hi_.size() + raw_.size() * sizeof(u64);
}

std::size_t PackedPlaintext::bytes_at(const ckks::CkksContext& ctx, int level) {
  std::size_t b = 0;
  for (int i = 0; i <= level; ++i)
    b += packable(ctx.modulus(i)) ? ctx.n() * sizeof(std::uint32_t) + (ctx.n() + 3) / 4
                                  : ctx.n() * sizeof(u64);
  return b;
}

LinearTransform::LinearTransform(const ckks::CkksEncoder& encoder, LinearTransformSpec spec, int level,
                                 int giant_step, bool cache_plaintexts, double plaintext_scale)
    : encoder_(&encoder), spec_(std::move(spec)), level_(level), plaintext_scale_(plaintext_scale) {
  check_spec(spec_);
  VEIL_REQUIRE(plaintext_scale == 0 || (std::isfinite(plaintext_scale) && plaintext_scale >= 1),
               "linear transform: plaintext scale must be >= 1, got " << plaintext_scale);
  for (const auto& t : spec_.diagonals)
    VEIL_REQUIRE(spec_.unit || t.values.size() == spec_.slots, "diagonal has the wrong length");
  VEIL_REQUIRE(level_ >= (spec_.unit ? 0 : 1), "a linear map with weights needs a level to rescale");
  giant_ = giant_step > 0 ? giant_step : choose_giant_step(spec_);
  VEIL_REQUIRE(giant_ >= 1 && static_cast<std::size_t>(giant_) <= spec_.slots,
               "giant step must be between 1 and the slot count");

  const StepSets sets = step_sets(spec_, giant_);
  baby_steps_.resize(spec_.in_blocks);
  for (int b = 0; b < spec_.in_blocks; ++b) baby_steps_[b].assign(sets.baby[b].begin(), sets.baby[b].end());

  std::map<std::pair<int, int>, std::size_t> group_index;
  for (std::size_t i = 0; i < spec_.diagonals.size(); ++i) {
    const auto& t = spec_.diagonals[i];
    const int g = sets.giant_of[i], j = sets.baby_of[i];
    auto [it, fresh] = group_index.try_emplace({t.out_block, g}, groups_.size());
    if (fresh) groups_.push_back({t.out_block, g, {}});
    const auto& babies = baby_steps_[t.in_block];
    const int baby = static_cast<int>(std::lower_bound(babies.begin(), babies.end(), j) - babies.begin());
    groups_[it->second].terms.push_back({t.in_block, baby, i});
  }
  if (cache_plaintexts && !spec_.unit) {
    plaintexts_.resize(groups_.size());
    std::vector<std::pair<std::size_t, std::size_t>> jobs;
    for (std::size_t g = 0; g < groups_.size(); ++g) {
      plaintexts_[g].resize(groups_[g].terms.size());
      for (std::size_t t = 0; t < groups_[g].terms.size(); ++t) jobs.emplace_back(g, t);
    }
    parallel_for(jobs.size(), [&](std::size_t k) {
      const auto [g, t] = jobs[k];
      plaintexts_[g][t] = PackedPlaintext(*encoder_->context(), encode_term(groups_[g], groups_[g].terms[t]));
    });
  } else if (!spec_.unit) {
    // Encoded on the fly: keep only the non-zero entries (a gap-layout diagonal has a
    // few hundred of its thousands of slots set).
    sparse_.resize(spec_.diagonals.size());
    parallel_for(spec_.diagonals.size(), [&](std::size_t i) {
      const auto& v = spec_.diagonals[i].values;
      for (std::size_t s = 0; s < v.size(); ++s)
        if (v[s] != 0.0) sparse_[i].emplace_back(static_cast<std::uint32_t>(s), v[s]);
    });
  }
  for (auto& t : spec_.diagonals) std::vector<double>().swap(t.values);
}

Plaintext LinearTransform::encode_term(const Group& g, const Term& t) const {
  // Pre-rotate by -giant so the giant rotation can be applied after the sum.
  const std::size_t n = spec_.slots;
  std::vector<double> rotated(n, 0.0);
  if (sparse_.empty()) {
    const auto& v = spec_.diagonals[t.diagonal].values;
    for (std::size_t s = 0; s < n; ++s) rotated[(s + g.giant) % n] = v[s];
  } else {
    for (const auto& [s, x] : sparse_[t.diagonal]) rotated[(s + g.giant) % n] = x;
  }
  const double scale = plaintext_scale_ > 0
                           ? plaintext_scale_
                           : static_cast<double>(encoder_->context()->modulus(level_).value());
  return encoder_->encode(std::span<const double>(rotated), scale, level_, n);
}

std::size_t LinearTransform::plaintext_bytes() const {
  std::size_t bytes = 0;
  for (const auto& g : plaintexts_)
    for (const auto& p : g) bytes += p.bytes();
  return bytes;
}

std::vector<Ciphertext> LinearTransform::apply(const ckks::Evaluator& eval, const std::vector<Ciphertext>& in,
                                               const rlwe::GaloisKeys& gk) const {
  VEIL_REQUIRE(static_cast<int>(in.size()) == spec_.in_blocks,
               "linear map expects " << spec_.in_blocks << " input ciphertexts, got " << in.size());
  const auto& ctx = *eval.context();
  // Baby steps: one hoisted decomposition per input block.
  std::vector<std::vector<Ciphertext>> babies(spec_.in_blocks);
  for (int b = 0; b < spec_.in_blocks; ++b) {
    VEIL_REQUIRE(in[b].slots() == spec_.slots,
                 "input ciphertext has " << in[b].slots() << " slots, the map " << spec_.slots);
    VEIL_REQUIRE(in[b].level() >= level_,
                 "input ciphertext at level " << in[b].level() << ", the map needs " << level_);
    Ciphertext x = in[b];
    if (x.level() > level_) eval.drop_to_level_inplace(x, level_);
    std::vector<int> nonzero;
    for (int s : baby_steps_[b])
      if (s != 0) nonzero.push_back(s);
    std::vector<Ciphertext> rotated =
        nonzero.empty() ? std::vector<Ciphertext>{} : eval.rotate_hoisted(x, nonzero, gk);
    std::size_t r = 0;
    for (int s : baby_steps_[b]) babies[b].push_back(s == 0 ? x : std::move(rotated[r++]));
  }

  // One partial sum per (output block, giant step), computed in parallel.
  std::vector<Ciphertext> partial(groups_.size());
  parallel_for(groups_.size(), [&](std::size_t gi) {
    const Group& g = groups_[gi];
    Ciphertext acc;
    if (spec_.unit) {
      acc = babies[g.terms[0].in_block][g.terms[0].baby];
      for (std::size_t t = 1; t < g.terms.size(); ++t)
        eval.add_inplace(acc, babies[g.terms[t].in_block][g.terms[t].baby]);
    } else {
      std::vector<const Ciphertext*> cts;
      for (const Term& t : g.terms) cts.push_back(&babies[t.in_block][t.baby]);
      if (!plaintexts_.empty()) {
        acc = Ciphertext(ctx, 2, level_, cts[0]->scale() * plaintexts_[gi][0].scale(), spec_.slots);
        multiply_accumulate(ctx, plaintexts_[gi], cts, acc);
      }
      // On the fly, a few terms at a time so a group's plaintexts are never all held.
      constexpr std::size_t kChunk = 16;
      for (std::size_t begin = 0; plaintexts_.empty() && begin < g.terms.size(); begin += kChunk) {
        const std::size_t end = std::min(g.terms.size(), begin + kChunk);
        std::vector<Plaintext> fresh;
        std::vector<const Plaintext*> pts;
        for (std::size_t t = begin; t < end; ++t) fresh.push_back(encode_term(g, g.terms[t]));
        for (const auto& p : fresh) pts.push_back(&p);
        const std::vector<const Ciphertext*> part_cts(cts.begin() + static_cast<std::ptrdiff_t>(begin),
                                                      cts.begin() + static_cast<std::ptrdiff_t>(end));
        Ciphertext part(ctx, 2, level_, part_cts[0]->scale() * pts[0]->scale(), spec_.slots);
        multiply_accumulate(ctx, pts, part_cts, part);
        if (acc.empty())
          acc = std::move(part);
        else
          eval.add_inplace(acc, part);
      }
    }
    if (g.giant != 0) eval.rotate_inplace(acc, g.giant, gk);
    partial[gi] = std::move(acc);
  });

  std::vector<Ciphertext> out(spec_.out_blocks);
  for (std::size_t gi = 0; gi < groups_.size(); ++gi) {
    Ciphertext& o = out[groups_[gi].out_block];
    if (o.empty())
      o = std::move(partial[gi]);
    else
      eval.add_inplace(o, partial[gi]);
  }
  // No diagonal reaching a block would need an encryption of zero, which the server
  // cannot make; the packing never produces such maps.
  for (const auto& o : out) VEIL_REQUIRE(!o.empty(), "linear map has an output block with no diagonal");
  parallel_for(out.size(), [&](std::size_t b) {
    Ciphertext& o = out[b];
    if (!spec_.unit) eval.rescale_inplace(o);
    if (!spec_.bias.empty()) {
      Plaintext p =
          encoder_->encode(std::span<const double>(spec_.bias[b]), o.scale(), o.level(), spec_.slots);
      eval.add_plain_inplace(o, p);
    }
    for (int s : spec_.fold_steps) {
      Ciphertext r = eval.rotate(o, s, gk);
      eval.add_inplace(o, r);
    }
  });
  return out;
}

}  // namespace veil::he
