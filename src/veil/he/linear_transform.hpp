// The CKKS application of a diagonal/BSGS plan (he/bsgs_plan.hpp): encoded diagonals,
// hoisted baby-step rotations, giant-step sums.
//
// Linear maps on packed vectors by the diagonal method (Halevi-Shoup 2014) with
// baby-step/giant-step summation and hoisted baby-step rotations (GAZELLE, Juvekar et
// al. 2018; Halevi-Shoup 2018; Bossuat et al. 2021).
//
// A packed vector is a list of `blocks` ciphertexts with `slots` slots each. The map is
// given by its non-zero generalised diagonals: term (bo, bi, d) contributes
//     out[bo][s] += values[s] * in[bi][(s + d) mod slots].
// With d = g + j (j in [0, G) the baby step, g a multiple of the giant step G; d is read
// as signed, in (-slots/2, slots/2], so that G may be any step, e.g. a layout's channel
// stride, and negative offsets share baby steps with positive ones),
//     out[bo] = sum_g rot_g( sum_{bi, j} rot_{-g}(values) * rot_j(in[bi]) ),
// so every input block is rotated once per distinct baby step (hoisted: one
// decomposition for all of them) and each output block once per distinct giant step.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <vector>

#include "veil/ckks/ciphertext.hpp"
#include "veil/ckks/encoder.hpp"
#include "veil/ckks/evaluator.hpp"
#include "veil/he/bsgs_plan.hpp"
#include "veil/he/mac.hpp"
#include "veil/rlwe/keys.hpp"

namespace veil::he {

// A cached weight diagonal in NTT form whose limbs over primes below 2^48 are stored
// packed (he/mac.hpp): 4 bytes a residue over 30-bit primes, 6 over the 40-odd-bit base
// prime, instead of 8, so about half the memory and half the memory traffic of the
// pointwise products, which are bound by it.
class PackedPlaintext {
 public:
  PackedPlaintext() = default;
  PackedPlaintext(const ckks::CkksContext& ctx, const ckks::Plaintext& p);
  // Limbs over `moduli`, consecutive in `limbs` (e.g. Q_level * P for double hoisting).
  PackedPlaintext(const std::vector<const math::Modulus*>& moduli, std::size_t n, const math::u64* limbs,
                  double scale);
  double scale() const { return scale_; }
  bool packed(std::size_t limb) const { return limbs_[limb].packed; }
  PackedRow row(std::size_t limb) const;
  const math::u64* raw(std::size_t limb) const;
  std::size_t bytes() const;
  // What a diagonal for inputs at `level` takes (over Q_level * P when `extended`).
  static std::size_t bytes_at(const ckks::CkksContext& ctx, int level, bool extended = false);
  // What one limb over q takes.
  static std::size_t limb_bytes(const math::Modulus& q, std::size_t n);

 private:
  struct Limb {
    bool packed = false;
    // Offsets of the limb's arrays: lo_ (or raw_ when not packed), hi_, hi16_; npos: none.
    std::size_t lo = 0, hi = npos, hi16 = npos;
  };
  static constexpr std::size_t npos = ~std::size_t{0};

  double scale_ = 0;
  std::size_t n_ = 0;
  std::vector<Limb> limbs_;
  std::vector<std::uint32_t> lo_;
  std::vector<std::uint8_t> hi_;
  std::vector<std::uint16_t> hi16_;
  std::vector<math::u64> raw_;
};

// A cached weight diagonal before its NTT: the rounded coefficients of the encoded
// polynomial, one copy for every limb, in 5 bytes (signed, below 2^39 in magnitude) where
// the NTT form takes 4.25 or 8 bytes per limb: l + 1 to 2(l + 1) times less memory than
// PackedPlaintext at level l. A use costs one NTT per limb (expand), where encoding on the
// fly costs the special FFT as well and the NTT form costs nothing but its memory traffic.
class CoefficientPlaintext {
 public:
  static constexpr int kBits = 40;
  CoefficientPlaintext() = default;
  // Throws unless every |coeffs[j]| < 2^(kBits - 1) (fits() says beforehand).
  CoefficientPlaintext(std::span<const std::int64_t> coeffs, double scale);
  static bool fits(std::span<const std::int64_t> coeffs);
  double scale() const { return scale_; }
  std::size_t bytes() const { return lo_.size() * sizeof(std::uint32_t) + hi_.size(); }
  static std::size_t bytes_at(const ckks::CkksContext& ctx) { return ctx.n() * 5; }
  // The residues modulo the context's prime `prime`, NTT form, into out[n].
  void expand(const rlwe::Context& ctx, std::size_t prime, math::u64* out) const;
  // The same in 32-bit words, for primes below 2^32 (the latency mode's 30-bit chains): the
  // NTT then runs without narrowing and widening the limb (math::NttTables::forward32),
  // and the products read half the bytes (mac_pointwise_packed, PackedWidth::k32).
  void expand(const rlwe::Context& ctx, std::size_t prime, std::uint32_t* out) const;

 private:
  double scale_ = 0;
  math::u64 largest_ = 0;  // max |coefficient|
  std::vector<std::uint32_t> lo_;
  std::vector<std::int8_t> hi_;
};

// What LinearTransform keeps of its weight diagonals between uses.
//   kNone: the non-zero slot values only; every use encodes (special FFT + NTT per limb).
//   kNtt: PackedPlaintext, ready for the products (fastest, most memory).
//   kCoefficients: CoefficientPlaintext, an NTT per limb at use (falls back to kNtt when
//     some coefficient does not fit in its 40 bits).
enum class PlaintextCache { kNone, kNtt, kCoefficients };

// How the rotations are key-switched and where they are lowered back to Q_level (ModDown).
//   kSingle: the reference. Hoisted decomposition of each input block, every baby and
//     every giant rotation lowered on its own (two ModDowns each); products over Q_level.
//   kLazyGiant: as kSingle, but the giant rotations leave their key switch over
//     Q_level * P (P * sigma(c0) + ks0, ks1); the giant steps of an output block are
//     summed there and lowered once. Two ModDowns per output block instead of two per
//     giant rotation, at no other cost (the second half of double hoisting).
//   kDouble: double hoisting (Bossuat, Troncoso-Pastoriza, Hubaux, Eurocrypt 2021): the
//     baby rotations stay over Q_level * P too, each giant step's products are summed
//     there with diagonals encoded over Q_level * P, the giant rotation lowers only the
//     sum's c1 for its decomposition, and each output block is lowered once. One ModDown
//     per giant rotation and two per output block in all; the price is k more limbs (the
//     special primes) in every product and cached diagonal.
//   kAuto: whichever the cost model (choose_hoisting) finds cheapest.
// All agree within the key-switching noise (ModDown of a sum instead of a sum of ModDowns).
enum class Hoisting { kAuto, kSingle, kLazyGiant, kDouble };

// The cost model behind kAuto, in units of one NTT of N coefficients, fitted to
// veil_he_bench: double hoisting pays with few giant steps and few products per rotation
// (e.g. 32 baby x 2 giant steps: 1.6x faster than kSingle), not for convolutions whose
// products dominate (36 x 36 at level 6: 1.5x slower), where the k extra limbs of every
// product cost more than the ModDowns saved; kLazyGiant never costs more than kSingle.
Hoisting choose_hoisting(const TransformCounts& counts, int out_blocks, int level,
                         std::size_t special_primes);
// choose_hoisting(...) == Hoisting::kDouble: the diagonals are then cached over Q_level * P.
bool double_hoisting_pays(const TransformCounts& counts, int out_blocks, int level,
                          std::size_t special_primes);

class LinearTransform {
 public:
  // Plaintext diagonals are encoded for inputs at `level`, at scale q_level, so the
  // rescale restores the input's scale whatever it is (or at `plaintext_scale` when
  // given: the result then has scale input scale * plaintext_scale / q_level, which lets a
  // caller land it on a chosen scale). With
  // `cache_plaintexts` false they are encoded on the fly in apply() (saves memory); the
  // second form picks any PlaintextCache.
  LinearTransform(const ckks::CkksEncoder& encoder, LinearTransformSpec spec, int level, int giant_step = 0,
                  bool cache_plaintexts = true, double plaintext_scale = 0,
                  Hoisting hoisting = Hoisting::kAuto);
  // With kCoefficients, the giant-step groups whose NTT forms fit `ntt_budget` bytes beyond
  // the coefficients they replace (in order) keep that form instead: a cache budget then
  // buys speed in small steps rather than whole stages.
  //
  // `complex_pairs`: real maps use half of what a CKKS plaintext can carry (N/2 complex
  // slots, real values only). Paired, two groups of diagonals (two output blocks at the
  // same giant step, else any two) share one plaintext per term, one real and one
  // imaginary: half the plaintexts and products, and one giant rotation for a pair of
  // blocks at the same giant step. Each output block is then the real part of its sum,
  // taken with one conjugation (ckks: (w + conj(w)) / 2, the 1/2 folded into the
  // diagonals) and the imaginary lane's sums multiplied by -i (the monomial -X^(N/2),
  // exact). Needs the conjugation key (needs_conjugation()). Applies with single or lazy
  // giant hoisting and the NTT or on-the-fly caches; elsewhere the map stays real.
  LinearTransform(const ckks::CkksEncoder& encoder, LinearTransformSpec spec, int level, int giant_step,
                  PlaintextCache cache, double plaintext_scale = 0, Hoisting hoisting = Hoisting::kAuto,
                  std::size_t ntt_budget = 0, bool complex_pairs = false);

  std::vector<ckks::Ciphertext> apply(const ckks::Evaluator& eval, const std::vector<ckks::Ciphertext>& in,
                                      const rlwe::GaloisKeys& gk) const;

  std::vector<int> rotation_steps() const { return he::rotation_steps(spec_, giant_); }
  // Whether apply() conjugates (complex pairs), so the Galois keys need conjugation.
  bool needs_conjugation() const { return complex_; }
  // The plaintexts a map with these diagonal positions caches when its groups are paired
  // (complex pairs; the diagonal count when they are not): for memory budgets before the
  // map is built.
  static std::size_t paired_plaintexts(const LinearTransformSpec& spec, int giant_step);
  TransformCounts counts() const { return count(spec_, giant_); }
  int input_level() const { return level_; }
  int output_level() const { return spec_.unit ? level_ : level_ - 1; }
  int giant_step() const { return giant_; }
  Hoisting hoisting() const { return hoisting_; }  // never kAuto
  bool double_hoisted() const { return hoisting_ == Hoisting::kDouble; }
  PlaintextCache plaintext_cache() const { return cache_; }
  std::size_t plaintext_bytes() const;
  // The part of plaintext_bytes() kept in the NTT form (the rest: coefficients).
  std::size_t ntt_plaintext_bytes() const;

 private:
  static constexpr std::size_t kNoDiagonal = ~std::size_t{0};
  struct Term {
    int in_block, baby;                     // baby: index into the input block's baby-step list
    std::size_t diagonal;                   // index into spec_.diagonals (the real lane; kNoDiagonal: none)
    std::size_t diagonal_im = kNoDiagonal;  // the imaginary lane's (complex pairs)
  };
  struct Group {
    int out_block, giant;  // giant rotation in [0, slots); the real lane's
    std::vector<Term> terms;
    int im_block = -1, im_giant = 0;  // the imaginary lane's (complex pairs); -1: none
  };
  // The (output block, giant step) groups of the diagonals, terms indexing the baby steps.
  static std::vector<Group> make_groups(const LinearTransformSpec& spec, const StepSets& sets,
                                        const std::vector<std::vector<int>>& baby_steps);
  // The groups merged two by two into complex pairs (see the constructor).
  static std::vector<Group> pair_groups(std::vector<Group> groups);
  std::vector<ckks::Complex> term_values(const Group& g, const Term& t) const;
  double term_scale() const;
  ckks::Plaintext encode_term(const Group& g, const Term& t) const;
  PackedPlaintext encode_term_packed(const Group& g, const Term& t) const;
  // Empty when some coefficient does not fit CoefficientPlaintext.
  std::optional<CoefficientPlaintext> encode_term_coefficients(const Group& g, const Term& t) const;
  // Prime index of limb i of the products (data primes, then special ones when double hoisted).
  std::size_t prime_of_limb(std::size_t i) const;
  // The two ways through apply() (see Hoisting): per output block, the sum before rescaling.
  std::vector<ckks::Ciphertext> block_sums_single(const ckks::Evaluator& eval,
                                                  const std::vector<ckks::Ciphertext>& in,
                                                  const rlwe::GaloisKeys& gk) const;
  std::vector<ckks::Ciphertext> block_sums_double(const ckks::Evaluator& eval,
                                                  const std::vector<ckks::Ciphertext>& in,
                                                  const rlwe::GaloisKeys& gk) const;
  ckks::Ciphertext input_at_level(const ckks::Evaluator& eval, const ckks::Ciphertext& x) const;
  // Complex pairs: output block b from its lanes (real b, imaginary out_blocks + b), as
  // w = real - i * imaginary, then w + conj(w).
  std::vector<ckks::Ciphertext> real_parts(const ckks::Evaluator& eval, std::vector<ckks::Ciphertext> lanes,
                                           const rlwe::GaloisKeys& gk) const;
  std::vector<int> nonzero_baby_steps(int block) const;

  const ckks::CkksEncoder* encoder_;
  LinearTransformSpec spec_;
  int level_;
  double plaintext_scale_ = 0;  // 0: q_level
  int giant_;
  Hoisting hoisting_ = Hoisting::kSingle;
  PlaintextCache cache_ = PlaintextCache::kNtt;
  bool complex_ = false;                      // complex pairs: block sums are over 2 * out_blocks lanes
  ckks::Plaintext minus_i_;                   // complex pairs: -i at level_, for the imaginary lanes
  std::vector<std::vector<int>> baby_steps_;  // per input block
  std::vector<Group> groups_;
  // Cached diagonals, parallel to groups_[g].terms (empty when encoding on the fly or for
  // a group kept as coefficients); over Q_level * P when double hoisted.
  std::vector<std::vector<PackedPlaintext>> plaintexts_;
  // Or their coefficients (PlaintextCache::kCoefficients), parallel the same way (empty for
  // a group kept in NTT form).
  std::vector<std::vector<CoefficientPlaintext>> coefficients_;
  // Otherwise the non-zero (slot, value) entries of each diagonal, encoded per use. The
  // dense values are released either way.
  std::vector<std::vector<std::pair<std::uint32_t, double>>> sparse_;
};

}  // namespace veil::he
