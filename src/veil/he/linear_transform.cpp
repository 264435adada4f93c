#include "veil/he/linear_transform.hpp"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <deque>
#include <map>
#include <mutex>
#include <span>
#include <tuple>

#include "veil/common/error.hpp"
#include "veil/common/thread_pool.hpp"
#include "veil/he/mac.hpp"
#include "veil/math/vecmod.hpp"

namespace veil::he {

using ckks::Ciphertext;
using ckks::Plaintext;
using math::u64;

namespace {

// Limb i of both polynomials of every term, as the MAC kernels take them. Ct is a
// ckks::Ciphertext or, double hoisted, an ExtendedCiphertext.
template <class Ct>
std::vector<const u64*> limb_inputs(const std::vector<const Ct*>& cts, std::size_t i) {
  std::vector<const u64*> x(2 * cts.size());
  for (std::size_t t = 0; t < cts.size(); ++t) {
    x[2 * t] = cts[t]->limb(0, i);
    x[2 * t + 1] = cts[t]->limb(1, i);
  }
  return x;
}

// acc = sum_t pt_t * ct_t, one limb per task (he/mac.hpp); modulus(i) is limb i's prime.
template <class Ct, class ModulusOf>
void multiply_accumulate(std::size_t n, const ModulusOf& modulus, const std::vector<const Plaintext*>& pts,
                         const std::vector<const Ct*>& cts, Ct& out) {
  parallel_for(out.num_limbs(), [&](std::size_t i) {
    const std::vector<const u64*> x = limb_inputs(cts, i);
    std::vector<const u64*> w(pts.size());
    for (std::size_t t = 0; t < pts.size(); ++t) w[t] = pts[t]->limb(i);
    u64* o[2] = {out.limb(0, i), out.limb(1, i)};
    mac_pointwise(modulus(i), n, w, x, 2, o);
  });
}

// Every cached group's products in one pass, a tile of positions of one limb at a time:
// out[g] = sum_t pts[g][t] * cts[g][t]. The groups of a map (one per output block and
// giant step) read the same baby-step rotations. Group by group over whole limbs, each
// group streamed its babies from memory again (27 MB a limb for a group of 54 terms at
// N = 2^15, beyond any cache); here a tile of every baby is read from memory once and
// stays in cache across the groups. With the sub-31-bit kernel (he/mac.hpp) the products
// were bound by that traffic: cifar10-shallow at scale 2^30, 2.9-3.0 s an image group by
// group, 2.6-2.8 s tile by tile (docs/benchmarks.md). The sums are the same residues
// either way, so the results are identical bit for bit.
//
// `add_to[g]` (when given): out[g] already holds a partial sum, and gets this one added.
template <class Ct, class ModulusOf>
void multiply_accumulate_groups(std::size_t n, const ModulusOf& modulus,
                                const std::vector<std::span<const PackedPlaintext>>& pts,
                                const std::vector<std::vector<const Ct*>>& cts, const std::vector<Ct*>& out,
                                const std::vector<bool>& add_to = {}) {
  if (out.empty()) return;
  // 512 positions: 800 KB of tiles for 100 babies (two polynomials each), in the L2 and
  // L3 caches; 256 and 1024 measured the same within the machine's noise. A multiple of
  // four keeps the packed rows' 2-bit fields byte aligned.
  constexpr std::size_t kGroupTile = 512;
  const std::size_t tile = std::min(kGroupTile, n), tiles = n / tile;
  VEIL_REQUIRE(n % tile == 0 && tile % 4 == 0, "ring degree " << n << " does not split into product tiles");
  parallel_for(out[0]->num_limbs() * tiles, [&](std::size_t task) {
    const std::size_t i = task / tiles, j0 = (task % tiles) * tile;
    std::vector<const u64*> x, raw;
    std::vector<PackedRow> rows;
    std::vector<u64> partial;  // a tile's two sums before they are added to out (add_to)
    for (std::size_t g = 0; g < pts.size(); ++g) {
      const std::size_t terms = pts[g].size();
      x.resize(2 * terms);
      for (std::size_t t = 0; t < terms; ++t) {
        x[2 * t] = cts[g][t]->limb(0, i) + j0;
        x[2 * t + 1] = cts[g][t]->limb(1, i) + j0;
      }
      u64* const dest[2] = {out[g]->limb(0, i) + j0, out[g]->limb(1, i) + j0};
      const bool add = !add_to.empty() && add_to[g];
      if (add) partial.resize(2 * tile);
      u64* o[2] = {add ? partial.data() : dest[0], add ? partial.data() + tile : dest[1]};
      if (pts[g][0].packed(i)) {
        rows.resize(terms);
        for (std::size_t t = 0; t < terms; ++t) {
          rows[t] = pts[g][t].row(i).from(j0);
        }
        mac_pointwise_packed(modulus(i), tile, rows, x, 2, o);
      } else {
        raw.resize(terms);
        for (std::size_t t = 0; t < terms; ++t) raw[t] = pts[g][t].raw(i) + j0;
        mac_pointwise(modulus(i), tile, raw, x, 2, o);
      }
      if (add) {
        const auto& q = modulus(i);
        for (std::size_t c = 0; c < 2; ++c) math::add_vec(q, dest[c], o[c], dest[c], tile);
      }
    }
  });
}

// The sums of every group with cached diagonals (the others stay empty), by
// multiply_accumulate_groups: group g reads babies[t.in_block][t.baby] for its terms t,
// and make(scale) makes its empty sum (a Ciphertext, or an ExtendedCiphertext when double
// hoisted).
template <class Ct, class Group, class ModulusOf, class Make>
std::vector<Ct> cached_group_sums(std::size_t n, const ModulusOf& modulus, const std::vector<Group>& groups,
                                  const std::vector<std::vector<PackedPlaintext>>& plaintexts,
                                  const std::vector<std::vector<Ct>>& babies, bool unit, const Make& make) {
  std::vector<Ct> sums(groups.size());
  std::vector<std::span<const PackedPlaintext>> pts;
  std::vector<std::vector<const Ct*>> cts;
  std::vector<Ct*> outs;
  for (std::size_t gi = 0; gi < groups.size(); ++gi) {
    if (unit || plaintexts.empty() || plaintexts[gi].empty()) continue;
    cts.emplace_back();
    for (const auto& t : groups[gi].terms) cts.back().push_back(&babies[t.in_block][t.baby]);
    pts.emplace_back(plaintexts[gi]);
    sums[gi] = make(cts.back()[0]->scale() * plaintexts[gi][0].scale());
    outs.push_back(&sums[gi]);
  }
  multiply_accumulate_groups(n, modulus, pts, cts, outs);
  return sums;
}

// The baby rotations no group still reads, freed: a group with a cached sum is done with
// them, so with every diagonal cached (the default) none is held through the giant
// rotations, whose key switches then reuse that memory. Without this the largest stage's
// peak held both (cifar10-shallow, level 13: 36 babies, 264 MB, beside the giant steps'
// sums and key-switch buffers).
template <class Ct, class Group>
void release_unread_babies(std::vector<std::vector<Ct>>& babies, const std::vector<Group>& groups,
                           const std::vector<Ct>& sums) {
  std::vector<std::vector<bool>> read(babies.size());
  for (std::size_t b = 0; b < babies.size(); ++b) read[b].assign(babies[b].size(), false);
  for (std::size_t gi = 0; gi < groups.size(); ++gi)
    if (sums[gi].empty())
      for (const auto& t : groups[gi].terms) read[t.in_block][t.baby] = true;
  for (std::size_t b = 0; b < babies.size(); ++b)
    for (std::size_t j = 0; j < babies[b].size(); ++j)
      if (!read[b][j]) babies[b][j] = Ct{};
}

// The same over cached coefficients: each task expands its limb of a few terms at a time
// (one NTT each) and takes their products while the expansions are in cache.
template <class Ct, class PrimeOf>
void multiply_accumulate(const rlwe::Context& ctx, const PrimeOf& prime,
                         std::span<const CoefficientPlaintext> pts, const std::vector<const Ct*>& cts,
                         Ct& out) {
  const std::size_t n = ctx.n();
  parallel_for(out.num_limbs(), [&](std::size_t i) {
    const std::size_t pi = prime(i);
    const auto& q = ctx.modulus(pi);
    // Four expansions: 1 MB at N = 2^15 in 64-bit words, about an L2 cache. Where the NTT
    // has a kernel on 32-bit lanes (primes below 2^30) they are expanded in 32-bit words,
    // as cached NTT-form diagonals are kept: two passes of the NTT fewer, and half the
    // bytes for the products to read.
    constexpr std::size_t kChunk = 4;
    const bool words32 = packed_width(q) == PackedWidth::k32 && ctx.ntt(pi).forward32_native();
    rlwe::PolyData w(words32 ? 0 : kChunk * n), tmp(2 * n);
    std::vector<std::uint32_t> w32(words32 ? kChunk * n : 0);
    u64* o[2] = {out.limb(0, i), out.limb(1, i)};
    u64* t[2] = {tmp.data(), tmp.data() + n};
    for (std::size_t begin = 0; begin < pts.size(); begin += kChunk) {
      const std::size_t k = std::min(kChunk, pts.size() - begin);
      std::vector<const u64*> wp(words32 ? 0 : k), x(2 * k);
      std::vector<PackedRow> rows(words32 ? k : 0);
      for (std::size_t r = 0; r < k; ++r) {
        if (words32) {
          pts[begin + r].expand(ctx, pi, w32.data() + r * n);
          rows[r] = PackedRow{w32.data() + r * n};
        } else {
          pts[begin + r].expand(ctx, pi, w.data() + r * n);
          wp[r] = w.data() + r * n;
        }
        x[2 * r] = cts[begin + r]->limb(0, i);
        x[2 * r + 1] = cts[begin + r]->limb(1, i);
      }
      u64* const* dest = begin == 0 ? o : t;
      if (words32)
        mac_pointwise_packed(q, n, rows, x, 2, dest);
      else
        mac_pointwise(q, n, wp, x, 2, dest);
      if (begin == 0) continue;
      for (std::size_t c = 0; c < 2; ++c) math::add_vec(q, o[c], t[c], o[c], n);
    }
  });
}

// a += b over Q_level * P.
void add_extended(const ckks::Evaluator& eval, ckks::ExtendedCiphertext& a,
                  const ckks::ExtendedCiphertext& b) {
  const std::size_t n = a.n();
  parallel_for(a.num_limbs(), [&](std::size_t i) {
    const auto& q = eval.extended_modulus(a.level(), i);
    for (std::size_t c = 0; c < 2; ++c) math::add_vec(q, a.limb(c, i), b.limb(c, i), a.limb(c, i), n);
  });
}

// Sums of extended ciphertexts, one per block, that parallel tasks add to as they go (each
// part freed once added), then lowered once each: two ModDowns per block, not per giant
// step, and the parts never all held at once.
class BlockSums {
 public:
  explicit BlockSums(int blocks)
      : sums_(static_cast<std::size_t>(blocks)), locks_(static_cast<std::size_t>(blocks)) {}
  void add(const ckks::Evaluator& eval, int block, ckks::ExtendedCiphertext part) {
    const auto b = static_cast<std::size_t>(block);
    std::lock_guard<std::mutex> lock(locks_[b]);
    if (sums_[b].empty())
      sums_[b] = std::move(part);
    else
      add_extended(eval, sums_[b], part);
  }
  std::vector<ckks::Ciphertext> lower(const ckks::Evaluator& eval) {
    std::vector<ckks::Ciphertext> out(sums_.size());
    parallel_for(out.size(), [&](std::size_t b) {
      if (!sums_[b].empty()) out[b] = eval.lower(std::move(sums_[b]));
    });
    return out;
  }

 private:
  std::vector<ckks::ExtendedCiphertext> sums_;
  std::deque<std::mutex> locks_;
};

// Each block's extended sums (parts: (block, sum) pairs) added over Q_level * P and
// lowered once.
std::vector<ckks::Ciphertext> lower_block_sums(const ckks::Evaluator& eval,
                                               std::vector<std::pair<int, ckks::ExtendedCiphertext>>& parts,
                                               int blocks) {
  BlockSums sums(blocks);
  for (auto& [block, part] : parts) sums.add(eval, block, std::move(part));
  return sums.lower(eval);
}

}  // namespace

namespace {
std::vector<const math::Modulus*> data_moduli(const ckks::CkksContext& ctx, std::size_t limbs) {
  std::vector<const math::Modulus*> m(limbs);
  for (std::size_t i = 0; i < limbs; ++i) m[i] = &ctx.modulus(i);
  return m;
}
}  // namespace

PackedPlaintext::PackedPlaintext(const ckks::CkksContext& ctx, const Plaintext& p)
    : PackedPlaintext(data_moduli(ctx, p.num_limbs()), ctx.n(), p.limb(0), p.scale()) {}

PackedPlaintext::PackedPlaintext(const std::vector<const math::Modulus*>& moduli, std::size_t n,
                                 const u64* limbs, double scale)
    : scale_(scale), n_(n), limbs_(moduli.size()) {
  std::size_t lo = 0, hi = 0, hi16 = 0, raw = 0;
  for (std::size_t i = 0; i < limbs_.size(); ++i) {
    Limb& l = limbs_[i];
    l.packed = packable(*moduli[i]);
    if (!l.packed) {
      l.lo = raw, raw += n_;
      continue;
    }
    l.lo = lo, lo += n_;
    const PackedWidth w = packed_width(*moduli[i]);
    if (w == PackedWidth::k34) l.hi = hi, hi += (n_ + 3) / 4;
    if (w == PackedWidth::k48) l.hi16 = hi16, hi16 += n_;
  }
  lo_.resize(lo);
  hi_.resize(hi);
  hi16_.resize(hi16);
  raw_.resize(raw);
  for (std::size_t i = 0; i < limbs_.size(); ++i) {
    const Limb& l = limbs_[i];
    const u64* src = limbs + i * n_;
    if (l.packed)
      pack_residues(src, n_, packed_width(*moduli[i]), lo_.data() + l.lo,
                    l.hi == npos ? nullptr : hi_.data() + l.hi,
                    l.hi16 == npos ? nullptr : hi16_.data() + l.hi16);
    else
      std::copy(src, src + n_, raw_.begin() + static_cast<std::ptrdiff_t>(l.lo));
  }
}

PackedRow PackedPlaintext::row(std::size_t limb) const {
  const Limb& l = limbs_[limb];
  return {lo_.data() + l.lo, l.hi == npos ? nullptr : hi_.data() + l.hi,
          l.hi16 == npos ? nullptr : hi16_.data() + l.hi16};
}

const u64* PackedPlaintext::raw(std::size_t limb) const { return raw_.data() + limbs_[limb].lo; }

std::size_t PackedPlaintext::bytes() const {
  return lo_.size() * sizeof(std::uint32_t) + hi_.size() + hi16_.size() * sizeof(std::uint16_t) +
         raw_.size() * sizeof(u64);
}

std::size_t PackedPlaintext::limb_bytes(const math::Modulus& q, std::size_t n) {
  return packable(q) ? packed_bytes(packed_width(q), n) : n * sizeof(u64);
}

std::size_t PackedPlaintext::bytes_at(const ckks::CkksContext& ctx, int level, bool extended) {
  std::size_t b = 0;
  for (int i = 0; i <= level; ++i) b += limb_bytes(ctx.modulus(i), ctx.n());
  for (std::size_t k = 0; extended && k < ctx.num_p(); ++k)
    b += limb_bytes(ctx.modulus(ctx.p_index() + k), ctx.n());
  return b;
}

bool CoefficientPlaintext::fits(std::span<const std::int64_t> coeffs) {
  constexpr std::int64_t kLimit = std::int64_t{1} << (kBits - 1);
  return std::all_of(coeffs.begin(), coeffs.end(), [](std::int64_t c) { return c > -kLimit && c < kLimit; });
}

CoefficientPlaintext::CoefficientPlaintext(std::span<const std::int64_t> coeffs, double scale)
    : scale_(scale), lo_(coeffs.size()), hi_(coeffs.size()) {
  VEIL_REQUIRE(fits(coeffs), "plaintext coefficients do not fit in " << kBits << " bits");
  for (std::size_t j = 0; j < coeffs.size(); ++j) {
    lo_[j] = static_cast<std::uint32_t>(coeffs[j]);
    hi_[j] = static_cast<std::int8_t>(coeffs[j] >> 32);
    largest_ = std::max(largest_, static_cast<u64>(coeffs[j] < 0 ? -coeffs[j] : coeffs[j]));
  }
}

void CoefficientPlaintext::expand(const rlwe::Context& ctx, std::size_t prime, u64* out) const {
  math::lift_signed40(ctx.modulus(prime), largest_, lo_.data(), hi_.data(), out, lo_.size());
  ctx.ntt(prime).forward(out);
}

void CoefficientPlaintext::expand(const rlwe::Context& ctx, std::size_t prime, std::uint32_t* out) const {
  math::lift_signed40(ctx.modulus(prime), largest_, lo_.data(), hi_.data(), out, lo_.size());
  ctx.ntt(prime).forward32(out);
}

Hoisting choose_hoisting(const TransformCounts& counts, int out_blocks, int level,
                         std::size_t special_primes) {
  const double l1 = level + 1, k = static_cast<double>(special_primes);
  // Fitted to veil_he_bench at cifar10-shallow's chain (N = 2^15, l = 3..8, k = 5; CPU time
  // of both threads): a ModDown costs about 2.3 x (k inverse and l1 forward NTTs plus the
  // k -> l1 conversion at a fifth of an NTT per pair), and a product over one limb about
  // 2.4 NTTs, since it streams the ciphertext and the diagonal from memory.
  const double mod_down = 2.3 * (k + l1 + 0.2 * k * l1 + 0.2 * l1);
  constexpr double kMacPerLimb = 2.4;
  const auto mults = static_cast<double>(counts.plaintext_mults);
  const double babies = counts.baby_rotations, giants = counts.giant_rotations;
  // Lazy giant steps: two ModDowns per baby rotation and per output block. Double: one per
  // giant rotation (its c1) and two per output block; every product runs over k more limbs.
  const double lazy = 2.0 * (babies + out_blocks) * mod_down + mults * l1 * kMacPerLimb;
  const double dbl = (giants + 2.0 * out_blocks) * mod_down + mults * (l1 + k) * kMacPerLimb;
  if (special_primes > 0 && dbl < lazy) return Hoisting::kDouble;
  return giants > 0 ? Hoisting::kLazyGiant : Hoisting::kSingle;
}

bool double_hoisting_pays(const TransformCounts& counts, int out_blocks, int level,
                          std::size_t special_primes) {
  return choose_hoisting(counts, out_blocks, level, special_primes) == Hoisting::kDouble;
}

LinearTransform::LinearTransform(const ckks::CkksEncoder& encoder, LinearTransformSpec spec, int level,
                                 int giant_step, bool cache_plaintexts, double plaintext_scale,
                                 Hoisting hoisting)
    : LinearTransform(encoder, std::move(spec), level, giant_step,
                      cache_plaintexts ? PlaintextCache::kNtt : PlaintextCache::kNone, plaintext_scale,
                      hoisting) {}

LinearTransform::LinearTransform(const ckks::CkksEncoder& encoder, LinearTransformSpec spec, int level,
                                 int giant_step, PlaintextCache cache, double plaintext_scale,
                                 Hoisting hoisting, std::size_t ntt_budget, bool complex_pairs)
    : encoder_(&encoder),
      spec_(std::move(spec)),
      level_(level),
      plaintext_scale_(plaintext_scale),
      cache_(cache) {
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

  groups_ = make_groups(spec_, sets, baby_steps_);
  const std::size_t special = encoder_->context()->num_p();
  hoisting_ = hoisting == Hoisting::kAuto
                  ? choose_hoisting(count(spec_, giant_), spec_.out_blocks, level_, special)
                  : hoisting;
  VEIL_REQUIRE(special > 0 || hoisting_ == Hoisting::kSingle,
               "double hoisting and lazy giant steps need special primes (a key-switching modulus P)");
  // The coefficient cache pairs too: a complex slot vector still encodes to one real
  // polynomial, so a pair's coefficients take the bytes of one term and one NTT per limb
  // at use serves both.
  complex_ = complex_pairs && !spec_.unit && hoisting_ != Hoisting::kDouble && groups_.size() >= 2;
  if (complex_) {
    groups_ = pair_groups(std::move(groups_));
    // -i in every slot is the monomial -X^(N/2) (encode_constant), exact at scale 1.
    minus_i_ = encoder_->encode_constant(ckks::Complex(0, -1), 1.0, level_, spec_.slots);
  }
  // Each group's terms by input block: the products can then take one block's baby
  // rotations at a time (block_sums_single). The residues sum to the same values in any
  // order.
  for (Group& g : groups_)
    std::stable_sort(g.terms.begin(), g.terms.end(), [](const Term& a, const Term& b) {
      return std::tie(a.in_block, a.baby) < std::tie(b.in_block, b.baby);
    });
  std::vector<std::pair<std::size_t, std::size_t>> jobs;
  for (std::size_t g = 0; g < groups_.size(); ++g)
    for (std::size_t t = 0; t < groups_[g].terms.size(); ++t) jobs.emplace_back(g, t);
  if (spec_.unit) cache_ = PlaintextCache::kNone;
  // Which groups keep the NTT form: all of them (kNtt), or under kCoefficients those whose
  // bytes beyond their coefficients fit `ntt_budget`, in order (the others keep their
  // coefficients).
  std::vector<char> ntt(groups_.size(), cache_ == PlaintextCache::kNtt);
  if (cache_ == PlaintextCache::kCoefficients) {
    // What the NTT form of a term costs beyond its coefficients.
    const auto& ctx = *encoder_->context();
    const std::size_t ntt_bytes = PackedPlaintext::bytes_at(ctx, level_, double_hoisted());
    const std::size_t per_term = ntt_bytes - std::min(ntt_bytes, CoefficientPlaintext::bytes_at(ctx));
    std::size_t used = 0;
    for (std::size_t g = 0; g < groups_.size(); ++g) {
      const std::size_t bytes = groups_[g].terms.size() * per_term;
      if (used + bytes <= ntt_budget) ntt[g] = 1, used += bytes;
    }
    coefficients_.resize(groups_.size());
    for (std::size_t g = 0; g < groups_.size(); ++g)
      if (!ntt[g]) coefficients_[g].resize(groups_[g].terms.size());
    std::atomic<bool> all_fit = true;
    parallel_for(jobs.size(), [&](std::size_t k) {
      const auto [g, t] = jobs[k];
      if (ntt[g]) return;
      auto c = encode_term_coefficients(groups_[g], groups_[g].terms[t]);
      if (c)
        coefficients_[g][t] = std::move(*c);
      else
        all_fit = false;
    });
    if (!all_fit) {
      coefficients_.clear();
      cache_ = PlaintextCache::kNtt;
      ntt.assign(groups_.size(), 1);
    }
  }
  if (std::find(ntt.begin(), ntt.end(), 1) != ntt.end()) {
    plaintexts_.resize(groups_.size());
    for (std::size_t g = 0; g < groups_.size(); ++g)
      if (ntt[g]) plaintexts_[g].resize(groups_[g].terms.size());
    parallel_for(jobs.size(), [&](std::size_t k) {
      const auto [g, t] = jobs[k];
      if (ntt[g]) plaintexts_[g][t] = encode_term_packed(groups_[g], groups_[g].terms[t]);
    });
  } else if (cache_ == PlaintextCache::kNone && !spec_.unit) {
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

std::vector<LinearTransform::Group> LinearTransform::make_groups(
    const LinearTransformSpec& spec, const StepSets& sets, const std::vector<std::vector<int>>& baby_steps) {
  std::vector<Group> groups;
  std::map<std::pair<int, int>, std::size_t> group_index;
  for (std::size_t i = 0; i < spec.diagonals.size(); ++i) {
    const auto& t = spec.diagonals[i];
    const int g = sets.giant_of[i], j = sets.baby_of[i];
    auto [it, fresh] = group_index.try_emplace({t.out_block, g}, groups.size());
    if (fresh) groups.push_back({t.out_block, g, {}});
    const auto& babies = baby_steps[t.in_block];
    const int baby = static_cast<int>(std::lower_bound(babies.begin(), babies.end(), j) - babies.begin());
    groups[it->second].terms.push_back({t.in_block, baby, i});
  }
  return groups;
}

std::size_t LinearTransform::paired_plaintexts(const LinearTransformSpec& spec, int giant_step) {
  if (spec.unit) return 0;
  const StepSets sets = step_sets(spec, giant_step);
  std::vector<std::vector<int>> babies(spec.in_blocks);
  for (int b = 0; b < spec.in_blocks; ++b) babies[b].assign(sets.baby[b].begin(), sets.baby[b].end());
  std::vector<Group> groups = make_groups(spec, sets, babies);
  if (groups.size() >= 2) groups = pair_groups(std::move(groups));
  std::size_t terms = 0;
  for (const Group& g : groups) terms += g.terms.size();
  return terms;
}

std::vector<LinearTransform::Group> LinearTransform::pair_groups(std::vector<Group> groups) {
  // Groups at the same giant step first: a pair of them shares its giant rotation.
  std::map<int, std::vector<std::size_t>> by_giant;
  for (std::size_t gi = 0; gi < groups.size(); ++gi) by_giant[groups[gi].giant].push_back(gi);
  std::vector<std::pair<std::size_t, std::size_t>> pairs;
  std::vector<std::size_t> left;
  for (const auto& [giant, list] : by_giant) {
    std::size_t k = 0;
    for (; k + 1 < list.size(); k += 2) pairs.emplace_back(list[k], list[k + 1]);
    if (k < list.size()) left.push_back(list[k]);
  }
  // The rest by the rotations they share (a term per rotation either lane reads): greedily,
  // each group with the one whose baby steps overlap its own most. cifar10-shallow's last
  // convolution (one output block, giant steps paired among themselves): 911 -> 729 MiB
  // of diagonals paired in order of giant step, 911 -> 456 MiB by overlap.
  const auto reads = [&](std::size_t gi) {
    std::vector<std::int64_t> r;
    for (const Term& t : groups[gi].terms) r.push_back((std::int64_t{t.in_block} << 32) | t.baby);
    std::sort(r.begin(), r.end());
    return r;
  };
  std::vector<std::vector<std::int64_t>> read(left.size());
  for (std::size_t k = 0; k < left.size(); ++k) read[k] = reads(left[k]);
  const auto shared = [&](std::size_t a, std::size_t b) {
    std::size_t n = 0;
    for (std::size_t i = 0, j = 0; i < read[a].size() && j < read[b].size();) {
      if (read[a][i] < read[b][j])
        ++i;
      else if (read[b][j] < read[a][i])
        ++j;
      else
        ++n, ++i, ++j;
    }
    return n;
  };
  std::vector<char> taken(left.size(), 0);
  std::size_t single = left.size();
  for (std::size_t a = 0; a < left.size(); ++a) {
    if (taken[a]) continue;
    std::size_t best = left.size(), most = 0;
    for (std::size_t b = a + 1; b < left.size(); ++b) {
      if (taken[b]) continue;
      const std::size_t n = shared(a, b);
      if (best == left.size() || n > most) best = b, most = n;
    }
    taken[a] = 1;
    if (best == left.size()) {
      single = a;
      continue;
    }
    taken[best] = 1;
    pairs.emplace_back(left[a], left[best]);
  }
  std::vector<Group> merged;
  for (const auto& [a, b] : pairs) {
    Group m{groups[a].out_block, groups[a].giant, {}, groups[b].out_block, groups[b].giant};
    // A term per input rotation (input block, baby step) both lanes read, where they do
    // (a map may list a diagonal twice: then so many terms).
    std::map<std::pair<int, int>, std::vector<std::size_t>> free_im;
    for (const Term& t : groups[a].terms) {
      free_im[{t.in_block, t.baby}].push_back(m.terms.size());
      m.terms.push_back(t);
    }
    for (const Term& t : groups[b].terms) {
      std::vector<std::size_t>& at = free_im[{t.in_block, t.baby}];
      if (at.empty()) {
        m.terms.push_back({t.in_block, t.baby, kNoDiagonal, t.diagonal});
        continue;
      }
      m.terms[at.back()].diagonal_im = t.diagonal;
      at.pop_back();
    }
    merged.push_back(std::move(m));
  }
  if (single < left.size()) merged.push_back(std::move(groups[left[single]]));
  return merged;
}

std::vector<ckks::Complex> LinearTransform::term_values(const Group& g, const Term& t) const {
  // Pre-rotate by -giant so the giant rotation can be applied after the sum. Complex
  // pairs: halved, since each block is then twice the real part of its sum.
  const std::size_t n = spec_.slots;
  const double half = complex_ ? 0.5 : 1.0;
  std::vector<ckks::Complex> rotated(n);
  const auto lane = [&](std::size_t diagonal, int giant, bool imaginary) {
    if (diagonal == kNoDiagonal) return;
    const auto put = [&](std::size_t s, double x) {
      ckks::Complex& r = rotated[(s + static_cast<std::size_t>(giant)) % n];
      if (imaginary)
        r.imag(half * x);
      else
        r.real(half * x);
    };
    if (sparse_.empty()) {
      const auto& v = spec_.diagonals[diagonal].values;
      for (std::size_t s = 0; s < n; ++s) put(s, v[s]);
    } else {
      for (const auto& [s, x] : sparse_[diagonal]) put(s, x);
    }
  };
  lane(t.diagonal, g.giant, false);
  lane(t.diagonal_im, g.im_giant, true);
  return rotated;
}

double LinearTransform::term_scale() const {
  return plaintext_scale_ > 0 ? plaintext_scale_
                              : static_cast<double>(encoder_->context()->modulus(level_).value());
}

Plaintext LinearTransform::encode_term(const Group& g, const Term& t) const {
  const std::vector<ckks::Complex> v = term_values(g, t);
  return encoder_->encode(std::span<const ckks::Complex>(v), term_scale(), level_, spec_.slots);
}

PackedPlaintext LinearTransform::encode_term_packed(const Group& g, const Term& t) const {
  const auto& ctx = *encoder_->context();
  if (!double_hoisted()) return PackedPlaintext(ctx, encode_term(g, t));
  const std::vector<ckks::Complex> v = term_values(g, t);
  const rlwe::PolyData limbs =
      encoder_->encode_extended(std::span<const ckks::Complex>(v), term_scale(), level_, spec_.slots);
  const auto l1 = static_cast<std::size_t>(level_) + 1;
  std::vector<const math::Modulus*> moduli(l1 + ctx.num_p());
  for (std::size_t i = 0; i < moduli.size(); ++i)
    moduli[i] = &ctx.modulus(i < l1 ? i : ctx.p_index() + (i - l1));
  return PackedPlaintext(moduli, ctx.n(), limbs.data(), term_scale());
}

std::optional<CoefficientPlaintext> LinearTransform::encode_term_coefficients(const Group& g,
                                                                              const Term& t) const {
  const std::vector<ckks::Complex> v = term_values(g, t);
  std::size_t slots = spec_.slots;
  const std::vector<double> coeffs =
      encoder_->scaled_coefficients(std::span<const ckks::Complex>(v), term_scale(), level_, slots);
  std::vector<std::int64_t> ints;
  if (!ckks::CkksEncoder::round_to_int64(coeffs, ints) || !CoefficientPlaintext::fits(ints))
    return std::nullopt;
  return CoefficientPlaintext(ints, term_scale());
}

std::size_t LinearTransform::prime_of_limb(std::size_t i) const {
  const auto l1 = static_cast<std::size_t>(level_) + 1;
  return i < l1 ? i : encoder_->context()->p_index() + (i - l1);
}

std::size_t LinearTransform::plaintext_bytes() const {
  std::size_t bytes = ntt_plaintext_bytes();
  for (const auto& g : coefficients_)
    for (const auto& p : g) bytes += p.bytes();
  return bytes;
}

std::size_t LinearTransform::ntt_plaintext_bytes() const {
  std::size_t bytes = 0;
  for (const auto& g : plaintexts_)
    for (const auto& p : g) bytes += p.bytes();
  return bytes;
}

Ciphertext LinearTransform::input_at_level(const ckks::Evaluator& eval, const Ciphertext& in) const {
  VEIL_REQUIRE(in.slots() == spec_.slots,
               "input ciphertext has " << in.slots() << " slots, the map " << spec_.slots);
  VEIL_REQUIRE(in.level() >= level_,
               "input ciphertext at level " << in.level() << ", the map needs " << level_);
  Ciphertext x = in;
  if (x.level() > level_) eval.drop_to_level_inplace(x, level_);
  return x;
}

std::vector<int> LinearTransform::nonzero_baby_steps(int block) const {
  std::vector<int> nonzero;
  for (int s : baby_steps_[block])
    if (s != 0) nonzero.push_back(s);
  return nonzero;
}

std::vector<Ciphertext> LinearTransform::block_sums_single(const ckks::Evaluator& eval,
                                                           const std::vector<Ciphertext>& in,
                                                           const rlwe::GaloisKeys& gk) const {
  const auto& ctx = *eval.context();
  auto modulus = [&](std::size_t i) -> const math::Modulus& { return ctx.modulus(i); };
  auto prime = [](std::size_t i) { return i; };
  // Baby steps: one hoisted decomposition per input block.
  std::vector<std::vector<Ciphertext>> babies(spec_.in_blocks);
  const auto rotate_block = [&](int b) {
    Ciphertext x = input_at_level(eval, in[b]);
    const std::vector<int> nonzero = nonzero_baby_steps(b);
    std::vector<Ciphertext> rotated =
        nonzero.empty() ? std::vector<Ciphertext>{} : eval.rotate_hoisted(x, nonzero, gk);
    std::size_t r = 0;
    for (int s : baby_steps_[b]) babies[b].push_back(s == 0 ? x : std::move(rotated[r++]));
  };
  // With every diagonal cached (the default), one input block's rotations at a time,
  // their products added into every group's sum before the next block's are made: one
  // block's babies held instead of all (cifar10-shallow, level 13: 132 of 264 MB at the
  // server's peak). The sums are the same residues either way.
  bool all_cached = !spec_.unit && spec_.in_blocks > 1;
  for (std::size_t gi = 0; all_cached && gi < groups_.size(); ++gi)
    all_cached = !plaintexts_.empty() && !plaintexts_[gi].empty();
  std::vector<Ciphertext> sums;
  if (all_cached) {
    sums.resize(groups_.size());
    std::vector<bool> started(groups_.size(), false);
    for (int b = 0; b < spec_.in_blocks; ++b) {
      rotate_block(b);
      std::vector<std::span<const PackedPlaintext>> pts;
      std::vector<std::vector<const Ciphertext*>> cts;
      std::vector<Ciphertext*> outs;
      std::vector<bool> add_to;
      for (std::size_t gi = 0; gi < groups_.size(); ++gi) {
        const auto& terms = groups_[gi].terms;
        const auto block_of = [](const Term& t) { return t.in_block; };
        const auto lo = std::ranges::lower_bound(terms, b, {}, block_of) - terms.begin();
        const auto hi = std::ranges::upper_bound(terms, b, {}, block_of) - terms.begin();
        if (lo == hi) continue;
        cts.emplace_back();
        for (auto t = lo; t < hi; ++t) cts.back().push_back(&babies[b][terms[t].baby]);
        pts.push_back(std::span<const PackedPlaintext>(plaintexts_[gi]).subspan(lo, hi - lo));
        if (!started[gi])
          sums[gi] =
              Ciphertext(ctx, 2, level_, cts.back()[0]->scale() * plaintexts_[gi][0].scale(), spec_.slots);
        add_to.push_back(started[gi]);
        started[gi] = true;
        outs.push_back(&sums[gi]);
      }
      multiply_accumulate_groups(ctx.n(), modulus, pts, cts, outs, add_to);
      std::vector<Ciphertext>().swap(babies[b]);
    }
  } else {
    for (int b = 0; b < spec_.in_blocks; ++b) rotate_block(b);
    // One partial sum per (output block, giant step): the groups with cached diagonals
    // all at once (multiply_accumulate_groups), the others in parallel below, where every
    // group is then rotated by its giant step; with lazy giant steps left over Q_level * P.
    sums = cached_group_sums(ctx.n(), modulus, groups_, plaintexts_, babies, spec_.unit,
                             [&](double scale) { return Ciphertext(ctx, 2, level_, scale, spec_.slots); });
    release_unread_babies(babies, groups_, sums);
  }
  const bool lazy = hoisting_ == Hoisting::kLazyGiant;
  // Lazy giant steps: each block's rotated sums added over Q_level * P as they are made,
  // lowered once. Complex pairs: blocks 0..out_blocks-1 take the real lanes, the next ones
  // the imaginary.
  const int blocks = spec_.out_blocks * (complex_ ? 2 : 1);
  const auto im_of = [&](const Group& g) { return spec_.out_blocks + g.im_block; };
  BlockSums extended(blocks);
  std::vector<Ciphertext> partial(groups_.size()), partial_im(groups_.size());
  parallel_for(groups_.size(), [&](std::size_t gi) {
    const Group& g = groups_[gi];
    Ciphertext acc = std::move(sums[gi]);  // cached diagonals: the products above
    if (acc.empty() && spec_.unit) {
      acc = babies[g.terms[0].in_block][g.terms[0].baby];
      for (std::size_t t = 1; t < g.terms.size(); ++t)
        eval.add_inplace(acc, babies[g.terms[t].in_block][g.terms[t].baby]);
    } else if (acc.empty()) {
      std::vector<const Ciphertext*> cts;
      for (const Term& t : g.terms) cts.push_back(&babies[t.in_block][t.baby]);
      if (!coefficients_.empty()) {
        acc = Ciphertext(ctx, 2, level_, cts[0]->scale() * coefficients_[gi][0].scale(), spec_.slots);
        multiply_accumulate(ctx, prime, std::span<const CoefficientPlaintext>(coefficients_[gi]), cts, acc);
      }
      // On the fly, a few terms at a time so a group's plaintexts are never all held.
      constexpr std::size_t kChunk = 16;
      for (std::size_t begin = 0; cache_ == PlaintextCache::kNone && begin < g.terms.size();
           begin += kChunk) {
        const std::size_t end = std::min(g.terms.size(), begin + kChunk);
        std::vector<Plaintext> fresh;
        std::vector<const Plaintext*> pts;
        for (std::size_t t = begin; t < end; ++t) fresh.push_back(encode_term(g, g.terms[t]));
        for (const auto& p : fresh) pts.push_back(&p);
        const std::vector<const Ciphertext*> part_cts(cts.begin() + static_cast<std::ptrdiff_t>(begin),
                                                      cts.begin() + static_cast<std::ptrdiff_t>(end));
        Ciphertext part(ctx, 2, level_, part_cts[0]->scale() * pts[0]->scale(), spec_.slots);
        multiply_accumulate(ctx.n(), modulus, pts, part_cts, part);
        if (acc.empty())
          acc = std::move(part);
        else
          eval.add_inplace(acc, part);
      }
    }
    // The sum rotated by the lane's giant step: into its block's (and `also`'s) extended
    // sum when lazy, else kept in `part`.
    const auto place = [&](Ciphertext c, int giant, Ciphertext& part, int block, int also) {
      if (giant != 0 && lazy) {
        ckks::ExtendedCiphertext r = eval.rotate_extended(c, giant, gk);
        if (also >= 0) extended.add(eval, also, r);
        extended.add(eval, block, std::move(r));
        return;
      }
      if (giant != 0) eval.rotate_inplace(c, giant, gk);
      part = std::move(c);
    };
    if (g.im_block >= 0 && g.im_giant != g.giant) {
      place(acc, g.im_giant, partial_im[gi], im_of(g), -1);
      place(std::move(acc), g.giant, partial[gi], g.out_block, -1);
    } else {
      place(std::move(acc), g.giant, partial[gi], g.out_block, g.im_block >= 0 ? im_of(g) : -1);
      if (g.im_block >= 0) partial_im[gi] = partial[gi];
    }
  });
  std::vector<Ciphertext> out = extended.lower(eval);
  const auto add_to = [&](int block, Ciphertext& c) {
    if (c.empty()) return;
    Ciphertext& o = out[static_cast<std::size_t>(block)];
    if (o.empty())
      o = std::move(c);
    else
      eval.add_inplace(o, c);
  };
  for (std::size_t gi = 0; gi < groups_.size(); ++gi) {
    add_to(groups_[gi].out_block, partial[gi]);
    add_to(im_of(groups_[gi]), partial_im[gi]);
  }
  return out;
}

std::vector<Ciphertext> LinearTransform::block_sums_double(const ckks::Evaluator& eval,
                                                           const std::vector<Ciphertext>& in,
                                                           const rlwe::GaloisKeys& gk) const {
  using ckks::ExtendedCiphertext;
  const auto& ctx = *eval.context();
  auto modulus = [&](std::size_t i) -> const math::Modulus& { return eval.extended_modulus(level_, i); };
  auto prime = [&](std::size_t i) { return prime_of_limb(i); };
  // Baby steps over Q_level * P (step 0 included, as P * x): one hoisted decomposition per
  // input block and no ModDown.
  std::vector<std::vector<ExtendedCiphertext>> babies(spec_.in_blocks);
  for (int b = 0; b < spec_.in_blocks; ++b)
    babies[b] = eval.rotate_hoisted_extended(input_at_level(eval, in[b]), baby_steps_[b], gk);

  // The groups with cached diagonals all at once, as in block_sums_single.
  std::vector<ExtendedCiphertext> partial =
      cached_group_sums(ctx.n(), modulus, groups_, plaintexts_, babies, spec_.unit,
                        [&](double scale) { return ExtendedCiphertext(ctx, level_, scale, spec_.slots); });
  release_unread_babies(babies, groups_, partial);
  parallel_for(groups_.size(), [&](std::size_t gi) {
    const Group& g = groups_[gi];
    ExtendedCiphertext acc = std::move(partial[gi]);  // cached diagonals: the products above
    if (acc.empty() && spec_.unit) {
      acc = babies[g.terms[0].in_block][g.terms[0].baby];
      for (std::size_t t = 1; t < g.terms.size(); ++t)
        add_extended(eval, acc, babies[g.terms[t].in_block][g.terms[t].baby]);
    } else if (acc.empty()) {
      std::vector<const ExtendedCiphertext*> cts;
      for (const Term& t : g.terms) cts.push_back(&babies[t.in_block][t.baby]);
      if (!coefficients_.empty()) {
        acc = ExtendedCiphertext(ctx, level_, cts[0]->scale() * coefficients_[gi][0].scale(), spec_.slots);
        multiply_accumulate(ctx, prime, std::span<const CoefficientPlaintext>(coefficients_[gi]), cts, acc);
      }
      constexpr std::size_t kChunk = 16;
      for (std::size_t begin = 0; cache_ == PlaintextCache::kNone && begin < g.terms.size();
           begin += kChunk) {
        const std::size_t end = std::min(g.terms.size(), begin + kChunk);
        std::vector<PackedPlaintext> fresh;
        for (std::size_t t = begin; t < end; ++t) fresh.push_back(encode_term_packed(g, g.terms[t]));
        const std::vector<const ExtendedCiphertext*> part_cts(
            cts.begin() + static_cast<std::ptrdiff_t>(begin), cts.begin() + static_cast<std::ptrdiff_t>(end));
        ExtendedCiphertext part(ctx, level_, part_cts[0]->scale() * fresh[0].scale(), spec_.slots);
        multiply_accumulate_groups<ExtendedCiphertext>(
            ctx.n(), modulus, {std::span<const PackedPlaintext>(fresh)}, {part_cts}, {&part});
        if (acc.empty())
          acc = std::move(part);
        else
          add_extended(eval, acc, part);
      }
    }
    // The giant rotation lowers only c1 (for its decomposition) and leaves its result
    // over Q_level * P.
    if (g.giant != 0) eval.rotate_extended_inplace(acc, g.giant, gk);
    partial[gi] = std::move(acc);
  });
  // Per output block: the sum over giant steps, lowered once.
  std::vector<std::pair<int, ExtendedCiphertext>> parts;
  for (std::size_t gi = 0; gi < groups_.size(); ++gi)
    if (!partial[gi].empty()) parts.emplace_back(groups_[gi].out_block, std::move(partial[gi]));
  return lower_block_sums(eval, parts, spec_.out_blocks);
}

std::vector<Ciphertext> LinearTransform::real_parts(const ckks::Evaluator& eval,
                                                    std::vector<Ciphertext> lanes,
                                                    const rlwe::GaloisKeys& gk) const {
  const auto blocks = static_cast<std::size_t>(spec_.out_blocks);
  VEIL_REQUIRE(lanes.size() == 2 * blocks, "complex pairs: expected both lanes of every block");
  std::vector<Ciphertext> out(blocks);
  parallel_for(blocks, [&](std::size_t b) {
    Ciphertext w = std::move(lanes[b]);
    Ciphertext& im = lanes[blocks + b];
    if (!im.empty()) {
      eval.multiply_plain_inplace(im, minus_i_);
      if (w.empty())
        w = std::move(im);
      else
        eval.add_inplace(w, im);
    }
    if (w.empty()) return;
    Ciphertext c = w;
    eval.conjugate_inplace(c, gk);
    eval.add_inplace(w, c);
    out[b] = std::move(w);
  });
  return out;
}

std::vector<Ciphertext> LinearTransform::apply(const ckks::Evaluator& eval, const std::vector<Ciphertext>& in,
                                               const rlwe::GaloisKeys& gk) const {
  VEIL_REQUIRE(static_cast<int>(in.size()) == spec_.in_blocks,
               "linear map expects " << spec_.in_blocks << " input ciphertexts, got " << in.size());
  std::vector<Ciphertext> out =
      double_hoisted() ? block_sums_double(eval, in, gk) : block_sums_single(eval, in, gk);
  if (complex_) out = real_parts(eval, std::move(out), gk);
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
