// Beaver's multiplication from precomputed correlated randomness (Beaver, CRYPTO 1991):
// with shares of a random a and of a^2 (a "square"), or of random a, b and c = ab (a
// "triple"), the parties multiply shared values with one exchange of masked values.
// Every square and triple hides the opened value only if it is used once: pools hand out
// each element once and refuse when they run dry.
//
// In the protocol the squares come from the exact homomorphic scheme in preprocessing
// (the client sends Enc(a_c); the server returns the flooded Enc(a_c * a_s - t), as in
// Delphi), with no trusted dealer. `deal_*` below is the ideal functionality the tests
// compare against and is used by nothing else.
#pragma once

#include <cstddef>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "veil/mpc/share.hpp"

namespace veil::mpc {

// Sizes count words (Field::words() per element, mpc/field.hpp), as share vectors do.
// One party's shares of n random a and their squares a^2.
struct Squares {
  std::vector<u64> a, a2;
  std::size_t size() const { return a.size(); }
};

// One party's shares of n random a, b and c = a*b.
struct Triples {
  std::vector<u64> a, b, c;
  std::size_t size() const { return a.size(); }
};

// Ideal functionality (tests only): returns {server's, client's} shares.
std::pair<Squares, Squares> deal_squares(const Field& f, std::size_t n, MaskSource& masks);
std::pair<Triples, Triples> deal_triples(const Field& f, std::size_t n, MaskSource& masks);

// A party's store of squares. take() hands out the next n, each exactly once, and throws
// std::runtime_error naming what ran out when fewer are left.
class SquarePool {
 public:
  SquarePool() = default;
  explicit SquarePool(Squares s) : s_(std::move(s)) {}
  std::size_t remaining() const { return s_.size() - next_; }
  Squares take(std::size_t n);

 private:
  Squares s_;
  std::size_t next_ = 0;
};

class TriplePool {
 public:
  TriplePool() = default;
  explicit TriplePool(Triples t) : t_(std::move(t)) {}
  std::size_t remaining() const { return t_.size() - next_; }
  Triples take(std::size_t n);

 private:
  Triples t_;
  std::size_t next_ = 0;
};

// --- Secure square, in two local steps around one exchange ---
// Step 1: this party's share of e = x - a (sent to the peer).
std::vector<u64> square_open(const Field& f, std::span<const u64> x, const Squares& s);
// Step 2: with e = e_mine + e_peer public, x^2 = a^2 + 2ea + e^2 (e^2 added by the
// server only). The result is at twice the input's scale.
std::vector<u64> square_close(const Field& f, Role role, std::span<const u64> e_mine,
                              std::span<const u64> e_peer, const Squares& s);

// --- Secure product of two shared vectors ---
// Step 1: this party's shares of d = x - a and e = y - b, concatenated [d | e].
std::vector<u64> multiply_open(const Field& f, std::span<const u64> x, std::span<const u64> y,
                               const Triples& t);
// Step 2: xy = c + d b + e a + d e (d e by the server only).
std::vector<u64> multiply_close(const Field& f, Role role, std::span<const u64> de_mine,
                                std::span<const u64> de_peer, const Triples& t);

}  // namespace veil::mpc
