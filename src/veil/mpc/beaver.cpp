#include "veil/mpc/beaver.hpp"

#include "veil/common/error.hpp"

namespace veil::mpc {

std::pair<Squares, Squares> deal_squares(const Field& f, std::size_t n, MaskSource& masks) {
  const auto a = masks.uniform(f, n);
  std::vector<u64> a2(n);
  for_each_word(f, n, [&](std::size_t i, const math::Modulus& m) { a2[i] = m.mul(a[i], a[i]); });
  auto sa = split(f, a, masks);
  auto sa2 = split(f, a2, masks);
  return {Squares{std::move(sa.server), std::move(sa2.server)},
          Squares{std::move(sa.client), std::move(sa2.client)}};
}

std::pair<Triples, Triples> deal_triples(const Field& f, std::size_t n, MaskSource& masks) {
  const auto a = masks.uniform(f, n);
  const auto b = masks.uniform(f, n);
  std::vector<u64> c(n);
  for_each_word(f, n, [&](std::size_t i, const math::Modulus& m) { c[i] = m.mul(a[i], b[i]); });
  auto sa = split(f, a, masks);
  auto sb = split(f, b, masks);
  auto sc = split(f, c, masks);
  return {Triples{std::move(sa.server), std::move(sb.server), std::move(sc.server)},
          Triples{std::move(sa.client), std::move(sb.client), std::move(sc.client)}};
}

namespace {

std::vector<u64> slice(const std::vector<u64>& v, std::size_t from, std::size_t n) {
  return {v.begin() + static_cast<std::ptrdiff_t>(from), v.begin() + static_cast<std::ptrdiff_t>(from + n)};
}

}  // namespace

Squares SquarePool::take(std::size_t n) {
  VEIL_CHECK_IO(n <= remaining(), "preprocessing exhausted: " << n << " squares needed, " << remaining()
                                                              << " left (run more preprocessing)");
  Squares out{slice(s_.a, next_, n), slice(s_.a2, next_, n)};
  next_ += n;
  return out;
}

Triples TriplePool::take(std::size_t n) {
  VEIL_CHECK_IO(n <= remaining(), "preprocessing exhausted: " << n << " triples needed, " << remaining()
                                                              << " left (run more preprocessing)");
  Triples out{slice(t_.a, next_, n), slice(t_.b, next_, n), slice(t_.c, next_, n)};
  next_ += n;
  return out;
}

std::vector<u64> square_open(const Field& f, std::span<const u64> x, const Squares& s) {
  VEIL_REQUIRE(x.size() == s.size(),
               "secure square: " << x.size() << " values but " << s.size() << " squares");
  std::vector<u64> e(x.begin(), x.end());
  sub_inplace(f, e, s.a);
  return e;
}

std::vector<u64> square_close(const Field& f, Role role, std::span<const u64> e_mine,
                              std::span<const u64> e_peer, const Squares& s) {
  const std::size_t n = s.size();
  VEIL_REQUIRE(e_mine.size() == n && e_peer.size() == n, "secure square: masked values of sizes "
                                                             << e_mine.size() << " and " << e_peer.size()
                                                             << " for " << n << " squares");
  check_words(f, n, "secure square");
  std::vector<u64> out(n);
  for_each_word(f, n, [&](std::size_t i, const math::Modulus& m) {
    const u64 e = m.add(e_mine[i], e_peer[i]);
    u64 v = m.add(s.a2[i], m.mul(m.add(e, e), s.a[i]));
    if (role == Role::kServer) v = m.add(v, m.mul(e, e));
    out[i] = v;
  });
  return out;
}

std::vector<u64> multiply_open(const Field& f, std::span<const u64> x, std::span<const u64> y,
                               const Triples& t) {
  const std::size_t n = t.size();
  VEIL_REQUIRE(x.size() == n && y.size() == n,
               "secure product: " << x.size() << " and " << y.size() << " values but " << n << " triples");
  check_words(f, n, "secure product");
  std::vector<u64> de(2 * n);
  for_each_word(f, n, [&](std::size_t i, const math::Modulus& m) {
    de[i] = m.sub(x[i], t.a[i]);
    de[n + i] = m.sub(y[i], t.b[i]);
  });
  return de;
}

std::vector<u64> multiply_close(const Field& f, Role role, std::span<const u64> de_mine,
                                std::span<const u64> de_peer, const Triples& t) {
  const std::size_t n = t.size();
  VEIL_REQUIRE(de_mine.size() == 2 * n && de_peer.size() == 2 * n,
               "secure product: masked values of sizes " << de_mine.size() << " and " << de_peer.size()
                                                         << " for " << n << " triples");
  check_words(f, n, "secure product");
  std::vector<u64> out(n);
  for_each_word(f, n, [&](std::size_t i, const math::Modulus& m) {
    const u64 d = m.add(de_mine[i], de_peer[i]);
    const u64 e = m.add(de_mine[n + i], de_peer[n + i]);
    u64 v = m.add(t.c[i], m.add(m.mul(d, t.b[i]), m.mul(e, t.a[i])));
    if (role == Role::kServer) v = m.add(v, m.mul(d, e));
    out[i] = v;
  });
  return out;
}

}  // namespace veil::mpc
