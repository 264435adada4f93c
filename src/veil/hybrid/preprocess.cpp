#include "veil/hybrid/preprocess.hpp"

#include <algorithm>
#include <cmath>
#include <tuple>

#include "veil/bfv/encoder.hpp"
#include "veil/bfv/encryptor.hpp"
#include "veil/bfv/evaluator.hpp"
#include "veil/bfv/flood.hpp"
#include "veil/bfv/serialize.hpp"
#include "veil/common/bytes.hpp"
#include "veil/common/error.hpp"
#include "veil/hybrid/conv_form.hpp"
#include "veil/hybrid/public_program.hpp"
#include "veil/math/primes.hpp"
#include "veil/mpc/share.hpp"
#include "veil/rlwe/keygen.hpp"
#include "veil/rlwe/serialize.hpp"

namespace veil::hybrid {

namespace {

using mpc::Role;

// The public bound on every quantised weight: they are 32-bit integers.
constexpr double kWeightBound = 2147483647.0;

std::vector<bfv::ConvLayout> layouts(const Program& prog, std::size_t n) {
  std::vector<bfv::ConvLayout> out;
  for (const Op& op : prog.ops)
    if (op.kind == Op::Kind::kLinear) out.emplace_back(op.he_shape, n);
  return out;
}

// A list of serialised objects in one frame: u32 count, then u64 length + bytes each.
Bytes pack(const std::vector<Bytes>& items) {
  ByteWriter w;
  w.u32(static_cast<std::uint32_t>(items.size()));
  for (const auto& b : items) {
    w.u64(b.size());
    w.bytes(b);
  }
  return w.take();
}

std::vector<std::span<const std::uint8_t>> unpack(const net::Frame& f, Message type, std::size_t expect,
                                                  const char* what) {
  VEIL_CHECK_IO(f.type == static_cast<std::uint16_t>(type),
                what << ": expected message type " << static_cast<int>(type) << ", got " << f.type);
  ByteReader r(f.payload);
  const std::uint32_t n = r.u32();
  VEIL_CHECK_IO(n == expect, what << ": " << n << " ciphertexts, expected " << expect);
  std::vector<std::span<const std::uint8_t>> items;
  for (std::uint32_t i = 0; i < n; ++i) {
    const std::uint64_t len = r.u64();
    VEIL_CHECK_IO(len <= r.remaining(),
                  what << ": item " << i << " claims " << len << " bytes, " << r.remaining() << " are left");
    items.push_back(r.view(static_cast<std::size_t>(len)));
  }
  r.expect_end();
  return items;
}

// One kernel block in NTT form: N coefficients on every prime (blocks are prepared at the
// top level).
std::size_t kernel_block_bytes(const bfv::BfvContext& ctx) {
  return ctx.n() * static_cast<std::size_t>(ctx.max_level() + 1) * sizeof(u64);
}

std::size_t beaver_batches(std::size_t count, std::size_t n) { return (count + n - 1) / n; }

struct BeaverCounts {
  std::size_t squares = 0, triples = 0;
};
BeaverCounts beaver_counts(const Program& prog) {
  const ProgramCost c = cost(prog);
  return {static_cast<std::size_t>(c.squares), static_cast<std::size_t>(c.triples)};
}

// x * y mod t, element-wise.
std::vector<u64> mul(const math::Modulus& t, std::span<const u64> x, std::span<const u64> y) {
  std::vector<u64> z(x.size());
  for (std::size_t i = 0; i < x.size(); ++i) z[i] = t.mul(x[i], y[i]);
  return z;
}

}  // namespace

namespace {

// One prime's pair of contexts (t = prime).
std::pair<bfv::ContextPtr, bfv::ContextPtr> he_parameters_for(const Program& prog, u64 prime) {
  VEIL_REQUIRE(math::is_prime(prime), "the share field modulus " << prime << " is not a prime");
  HeParameters hp;
  // Linear layers: the widest layer's fan-in times the public weight bound.
  double l1 = 1;
  for (const Op& op : prog.ops)
    if (op.kind == Op::Kind::kLinear) l1 = std::max(l1, op.he_shape.l1_bound(kWeightBound));
  bfv::ParameterRequest lin;
  lin.t = prime;
  lin.batching = false;
  lin.max_l1_norm = l1;
  hp.linear = bfv::BfvContext::create(bfv::select_parameters(lin));
  // Beaver products: two plaintexts with arbitrary slots (coefficients up to t/2 each), so
  // L = 2 N t / 2 = N t at the ring degree chosen; try the smallest degree that holds it.
  std::string why;
  for (int log_n = 12; log_n <= 15 && !hp.beaver; ++log_n) {
    bfv::ParameterRequest b;
    b.t = prime;
    b.batching = true;
    b.min_log_n = b.max_log_n = log_n;
    b.max_l1_norm = std::ldexp(static_cast<double>(prime), log_n);
    try {
      hp.beaver = bfv::BfvContext::create(bfv::select_parameters(b));
    } catch (const std::invalid_argument& e) {
      why = e.what();
    }
  }
  VEIL_REQUIRE(hp.beaver != nullptr, "no 128-bit parameters for the Beaver products: " << why);
  return {hp.linear, hp.beaver};
}

// Interleaves one-prime materials (residue r's words) into the ring's (mpc/field.hpp).
std::vector<u64> interleave(const std::vector<const std::vector<u64>*>& parts) {
  const std::size_t k = parts.size(), n = parts[0]->size();
  std::vector<u64> out(n * k);
  for (std::size_t r = 0; r < k; ++r) {
    VEIL_REQUIRE(parts[r]->size() == n, "preprocessing residues of different sizes");
    for (std::size_t i = 0; i < n; ++i) out[i * k + r] = (*parts[r])[i];
  }
  return out;
}

Material interleave(std::vector<Material> parts) {
  if (parts.size() == 1) return std::move(parts[0]);
  Material m;
  m.role = parts[0].role;
  auto each = [&](auto get) {
    std::vector<const std::vector<u64>*> v;
    for (auto& p : parts) v.push_back(&get(p));
    return interleave(v);
  };
  const std::size_t ops = parts[0].offset.size();
  m.offset.resize(ops);
  m.mask.resize(parts[0].mask.size());
  for (std::size_t k = 0; k < ops; ++k) {
    m.offset[k] = each([&](Material& p) -> std::vector<u64>& { return p.offset[k]; });
    if (k < m.mask.size()) m.mask[k] = each([&](Material& p) -> std::vector<u64>& { return p.mask[k]; });
  }
  m.squares.a = each([](Material& p) -> std::vector<u64>& { return p.squares.a; });
  m.squares.a2 = each([](Material& p) -> std::vector<u64>& { return p.squares.a2; });
  m.triples.a = each([](Material& p) -> std::vector<u64>& { return p.triples.a; });
  m.triples.b = each([](Material& p) -> std::vector<u64>& { return p.triples.b; });
  m.triples.c = each([](Material& p) -> std::vector<u64>& { return p.triples.c; });
  return m;
}

}  // namespace

HeParameters he_parameters(const Program& prog) {
  HeParameters hp;
  std::tie(hp.linear, hp.beaver) = he_parameters_for(prog, prog.prime);
  if (prog.prime2 != 0) std::tie(hp.linear2, hp.beaver2) = he_parameters_for(prog, prog.prime2);
  return hp;
}

PreprocessCost preprocess_cost(const Program& prog, const HeParameters& hp) {
  PreprocessCost c;
  for (int r = 0; r < hp.residues(); ++r) {
    const auto& ctx = *hp.linear_of(r);
    const std::size_t block_bytes = kernel_block_bytes(ctx);
    for (const bfv::ConvLayout& layout : layouts(prog, ctx.n())) {
      c.ciphertexts_up += static_cast<std::size_t>(layout.input_blocks());
      c.ciphertexts_down += static_cast<std::size_t>(layout.output_blocks());
      for (int o = 0; o < layout.output_blocks(); ++o)
        for (int b = 0; b < layout.input_blocks(); ++b)
          if (layout.block_used(o, b)) ++c.products, c.block_bytes += block_bytes;
    }
  }
  return c;
}

// --- server model ---

ServerModel::ServerModel(const Program& program, HeParameters params)
    : ServerModel(std::make_shared<const Program>(program), std::move(params)) {}

ServerModel::ServerModel(std::shared_ptr<const Program> program, HeParameters params, std::size_t cache_bytes)
    : program_(std::move(program)), params_(std::move(params)) {
  VEIL_REQUIRE(program_ != nullptr, "no program for the server model");
  const Program& prog = *program_;
  const int residues = params_.residues();
  VEIL_REQUIRE(
      residues == static_cast<int>(prog.primes().size()),
      "exact-scheme parameters for " << residues << " primes, the share ring has " << prog.primes().size());
  std::vector<bfv::Evaluator> evals;
  for (int r = 0; r < residues; ++r) {
    const auto& ctx = params_.linear_of(r);
    VEIL_REQUIRE(ctx->t() == prog.primes()[static_cast<std::size_t>(r)],
                 "the linear context's plaintext modulus is not the share ring's prime");
    evals.emplace_back(ctx);
  }
  layers_.resize(static_cast<std::size_t>(residues));
  std::size_t kept = 0;
  // Layer by layer, both residues of a layer together: the budget keeps whole layers
  // ready as far as it goes, the first ones first.
  for (std::size_t k = 0; k < prog.ops.size(); ++k) {
    const Op& op = prog.ops[k];
    if (op.kind != Op::Kind::kLinear) continue;
    // The kernel lowering recovered, else (a program made otherwise) recovered here.
    ConvForm form = op.conv_kernel.empty() ? convolution_form(op) : ConvForm{op.he_shape, op.conv_kernel};
    const bfv::ConvShape& s = op.he_shape;
    VEIL_REQUIRE(form.shape.in_channels == s.in_channels && form.shape.kernel_h == s.kernel_h &&
                     form.shape.stride == s.stride && form.shape.depthwise == s.depthwise &&
                     form.kernel.size() ==
                         static_cast<std::size_t>(s.out_channels) * s.in_channels * s.kernel_h * s.kernel_w,
                 "layer '" << op.name << "': its weights do not form the published convolution");
    bool all_ready = true;
    for (int r = 0; r < residues; ++r) {
      const auto& ctx = params_.linear_of(r);
      Layer layer{k, bfv::ConvLayout(op.he_shape, ctx->n()), {}, {}, true};
      const std::size_t block_bytes = kernel_block_bytes(*ctx);
      layer.inputs.resize(static_cast<std::size_t>(layer.layout.output_blocks()));
      layer.kernel.resize(layer.inputs.size());
      for (int o = 0; o < layer.layout.output_blocks(); ++o)
        for (int b = 0; b < layer.layout.input_blocks(); ++b) {
          if (!layer.layout.block_used(o, b)) continue;
          layer.inputs[static_cast<std::size_t>(o)].push_back(b);
          all_ready_bytes_ += block_bytes;
          auto& row = layer.kernel[static_cast<std::size_t>(o)];
          if (kept + block_bytes > cache_bytes) {
            row.emplace_back();
            layer.all_ready = false;
            ++blocks_per_use_;
            continue;
          }
          kept += block_bytes;
          row.push_back(evals[static_cast<std::size_t>(r)].prepare(
              bfv::Plaintext(*ctx, layer.layout.encode_kernel(o, b, form.kernel, ctx->t()))));
        }
      all_ready = all_ready && layer.all_ready;
      layers_[static_cast<std::size_t>(r)].push_back(std::move(layer));
    }
    kernels_.push_back(all_ready ? std::vector<std::int64_t>{} : std::move(form.kernel));
  }
}

bfv::PreparedPlaintext ServerModel::prepare_block(int residue, std::size_t layer, int o,
                                                  std::size_t j) const {
  const Layer& l = layers(residue).at(layer);
  const auto& kept = l.kernel.at(static_cast<std::size_t>(o)).at(j);
  if (kept.param_id() != 0) return kept;
  const int b = l.inputs[static_cast<std::size_t>(o)][j];
  const auto& ctx = params_.linear_of(residue);
  return bfv::Evaluator(ctx).prepare(
      bfv::Plaintext(*ctx, l.layout.encode_kernel(o, b, kernels_.at(layer), ctx->t())));
}

std::size_t ServerModel::memory_bytes() const {
  std::size_t n = 0;
  for (const auto& residue : layers_)
    for (const auto& l : residue)
      for (const auto& row : l.kernel)
        for (const auto& p : row) n += p.data().size() * sizeof(u64);
  for (const auto& k : kernels_) n += k.size() * sizeof(std::int64_t);
  return n;
}

// --- client ---

// One prime's keys and layouts (t = p_r).
struct ClientResidue {
  u64 prime;
  bfv::ContextPtr lin_ctx, bv_ctx;
  std::vector<bfv::ConvLayout> layouts;
  rlwe::KeyGenerator kg_lin, kg_bv;
  bfv::Encryptor enc_lin, enc_bv;
  bfv::Decryptor dec_lin, dec_bv;
  ClientResidue(const Program& prog, u64 p, bfv::ContextPtr lin, bfv::ContextPtr bv)
      : prime(p),
        lin_ctx(std::move(lin)),
        bv_ctx(std::move(bv)),
        layouts(hybrid::layouts(prog, lin_ctx->n())),
        kg_lin(lin_ctx),
        kg_bv(bv_ctx),
        enc_lin(lin_ctx, kg_lin.secret_key()),
        enc_bv(bv_ctx, kg_bv.secret_key()),
        dec_lin(lin_ctx, kg_lin.secret_key()),
        dec_bv(bv_ctx, kg_bv.secret_key()) {}
};

struct PreprocessClient::State {
  // The public view only, as a client over TCP receives it: in one process too, the client
  // keeps no weight (and no copy of a CIFAR-10 model's hundreds of MB of them).
  Program prog;
  HeParameters hp;
  std::vector<std::unique_ptr<ClientResidue>> residues;
  mpc::MaskSource masks;
  State(const Program& p, HeParameters h) : prog(public_view(p)), hp(std::move(h)) {
    const auto primes = prog.primes();
    VEIL_REQUIRE(
        hp.residues() == static_cast<int>(primes.size()),
        "exact-scheme parameters for " << hp.residues() << " primes, the share ring has " << primes.size());
    for (int r = 0; r < hp.residues(); ++r)
      residues.push_back(std::make_unique<ClientResidue>(prog, primes[static_cast<std::size_t>(r)],
                                                         hp.linear_of(r), hp.beaver_of(r)));
  }
  Material run(ClientResidue& R, net::Channel& ch);
};

PreprocessClient::PreprocessClient(const Program& program, HeParameters params)
    : s_(std::make_unique<State>(program, std::move(params))) {}
PreprocessClient::~PreprocessClient() = default;

void PreprocessClient::send_keys(net::Channel& ch) {
  std::vector<Bytes> keys;
  for (const auto& R : s_->residues) {
    keys.push_back(rlwe::save_public_key(*R->lin_ctx, R->kg_lin.create_public_key()));
    keys.push_back(rlwe::save_public_key(*R->bv_ctx, R->kg_bv.create_public_key()));
  }
  ch.send(static_cast<std::uint16_t>(Message::kKeys), pack(keys));
}

Material PreprocessClient::run(net::Channel& ch) {
  std::vector<Material> parts;
  for (const auto& R : s_->residues) parts.push_back(s_->run(*R, ch));
  return interleave(std::move(parts));
}

Material PreprocessClient::State::run(ClientResidue& R, net::Channel& ch) {
  State& s = *this;
  const mpc::Field field(R.prime, 0);
  const auto& lin = *R.lin_ctx;
  Material m;
  m.role = Role::kClient;
  m.mask.resize(s.prog.ops.size());
  m.offset.resize(s.prog.ops.size());
  std::size_t li = 0;
  for (std::size_t k = 0; k < s.prog.ops.size(); ++k) {
    const Op& op = s.prog.ops[k];
    if (op.kind != Op::Kind::kLinear) continue;
    const bfv::ConvLayout& layout = R.layouts[li++];
    m.mask[k] = s.masks.uniform(field, static_cast<std::size_t>(op.linear.cols));
    std::vector<Bytes> cts;
    for (int b = 0; b < layout.input_blocks(); ++b)
      cts.push_back(bfv::save_ciphertext(
          lin, R.enc_lin.encrypt(bfv::Plaintext(lin, layout.encode_input(b, m.mask[k], lin.t())))));
    ch.send(static_cast<std::uint16_t>(Message::kLinearRequest), pack(cts));
    const net::Frame f = ch.receive();
    const auto items = unpack(f, Message::kLinearResponse, static_cast<std::size_t>(layout.output_blocks()),
                              "preprocessing response");
    m.offset[k].resize(static_cast<std::size_t>(op.linear.rows));
    const std::size_t per_channel = static_cast<std::size_t>(layout.out_height() * layout.out_width());
    for (int o = 0; o < layout.output_blocks(); ++o) {
      const auto idx = layout.output_indices(o);
      const auto vals = R.dec_lin.decrypt(bfv::load_response(lin, items[static_cast<std::size_t>(o)], idx));
      std::copy(vals.begin(), vals.end(),
                m.offset[k].begin() + static_cast<std::ptrdiff_t>(layout.out_channel_begin(o) * per_channel));
    }
  }
  // Beaver squares, then triples, N per ciphertext.
  const auto& bv = *R.bv_ctx;
  const bfv::BatchEncoder enc(R.bv_ctx);
  const std::size_t n = bv.n();
  const BeaverCounts want = beaver_counts(s.prog);
  const std::size_t sq_batches = beaver_batches(want.squares, n),
                    tr_batches = beaver_batches(want.triples, n);
  const auto a = s.masks.uniform(field, sq_batches * n);
  const auto ta = s.masks.uniform(field, tr_batches * n), tb = s.masks.uniform(field, tr_batches * n);
  if (sq_batches + tr_batches > 0) {
    std::vector<Bytes> cts;
    auto enc_batch = [&](const std::vector<u64>& v, std::size_t i) {
      cts.push_back(bfv::save_ciphertext(bv, R.enc_bv.encrypt(enc.encode(std::span(v).subspan(i * n, n)))));
    };
    for (std::size_t i = 0; i < sq_batches; ++i) enc_batch(a, i);
    for (std::size_t i = 0; i < tr_batches; ++i) enc_batch(ta, i), enc_batch(tb, i);
    ch.send(static_cast<std::uint16_t>(Message::kBeaverRequest), pack(cts));
    const net::Frame f = ch.receive();
    const auto items = unpack(f, Message::kBeaverResponse, sq_batches + tr_batches, "Beaver response");
    std::vector<std::uint32_t> all(n);
    for (std::size_t i = 0; i < n; ++i) all[i] = static_cast<std::uint32_t>(i);
    auto product = [&](std::size_t i) {
      return enc.decode(R.dec_bv.decrypt(bfv::load_response(bv, items[i], all)));
    };
    const math::Modulus& t = field.mod();
    for (std::size_t i = 0; i < sq_batches; ++i) {
      const auto cross = product(i);  // 2 a_c a_s - u
      for (std::size_t j = 0; j < n && i * n + j < want.squares; ++j) {
        const u64 ac = a[i * n + j];
        m.squares.a.push_back(ac);
        m.squares.a2.push_back(t.add(t.mul(ac, ac), cross[j]));
      }
    }
    for (std::size_t i = 0; i < tr_batches; ++i) {
      const auto cross = product(sq_batches + i);  // a_c b_s + b_c a_s - u
      for (std::size_t j = 0; j < n && i * n + j < want.triples; ++j) {
        const u64 ac = ta[i * n + j], bc = tb[i * n + j];
        m.triples.a.push_back(ac);
        m.triples.b.push_back(bc);
        m.triples.c.push_back(t.add(t.mul(ac, bc), cross[j]));
      }
    }
  }
  return m;
}

// --- server ---

struct PreprocessServer::State {
  std::shared_ptr<const ServerModel> model;
  // [residue]
  std::vector<std::unique_ptr<bfv::Flooder>> flood_lin, flood_bv;
  mpc::MaskSource masks;
  Material run(int residue, net::Channel& ch);
};

PreprocessServer::PreprocessServer(std::shared_ptr<const ServerModel> model) : s_(std::make_unique<State>()) {
  s_->model = std::move(model);
}
PreprocessServer::~PreprocessServer() = default;

void PreprocessServer::receive_keys(net::Channel& ch) { receive_keys(ch.receive()); }

bool PreprocessServer::has_keys() const { return !s_->flood_lin.empty(); }

void PreprocessServer::receive_keys(const net::Frame& f) {
  const auto& hp = s_->model->params();
  const std::size_t k = static_cast<std::size_t>(hp.residues());
  const auto items = unpack(f, Message::kKeys, 2 * k, "public keys");
  // All or none: keys that fail to load leave the session as it was.
  std::vector<std::unique_ptr<bfv::Flooder>> lin, bv;
  for (std::size_t r = 0; r < k; ++r) {
    const auto& lc = hp.linear_of(static_cast<int>(r));
    const auto& bc = hp.beaver_of(static_cast<int>(r));
    lin.push_back(std::make_unique<bfv::Flooder>(lc, rlwe::load_public_key(*lc, items[2 * r])));
    bv.push_back(std::make_unique<bfv::Flooder>(bc, rlwe::load_public_key(*bc, items[2 * r + 1])));
  }
  s_->flood_lin = std::move(lin);
  s_->flood_bv = std::move(bv);
}

Material PreprocessServer::run(net::Channel& ch) {
  VEIL_CHECK_IO(!s_->flood_lin.empty(), "preprocessing requested before the client's public keys arrived");
  std::vector<Material> parts;
  for (int r = 0; r < s_->model->params().residues(); ++r) parts.push_back(s_->run(r, ch));
  return interleave(std::move(parts));
}

Material PreprocessServer::State::run(int residue, net::Channel& ch) {
  State& s = *this;
  const auto r = static_cast<std::size_t>(residue);
  const Program& prog = s.model->program();
  const mpc::Field field(prog.primes()[r], 0);
  const auto& hp = s.model->params();
  const auto& lin = *hp.linear_of(residue);
  const bfv::Evaluator eval(hp.linear_of(residue));
  Material m;
  m.role = Role::kServer;
  m.offset.resize(prog.ops.size());
  const auto& layers = s.model->layers(residue);
  for (std::size_t li = 0; li < layers.size(); ++li) {
    const ServerModel::Layer& layer = layers[li];
    const Op& op = prog.ops[layer.op];
    const auto& layout = layer.layout;
    const net::Frame f = ch.receive();
    const auto items = unpack(f, Message::kLinearRequest, static_cast<std::size_t>(layout.input_blocks()),
                              "preprocessing request");
    std::vector<bfv::Ciphertext> cts;
    for (const auto& b : items) cts.push_back(bfv::load_ciphertext(lin, b));
    std::vector<const bfv::Ciphertext*> ct_ptrs;
    for (const auto& c : cts) ct_ptrs.push_back(&c);
    auto& offset = m.offset[layer.op];
    offset.resize(static_cast<std::size_t>(op.linear.rows));
    const std::size_t per_channel = static_cast<std::size_t>(layout.out_height() * layout.out_width());
    std::vector<Bytes> out;
    for (int o = 0; o < layout.output_blocks(); ++o) {
      const auto& inputs = layer.inputs[static_cast<std::size_t>(o)];
      const auto& kernel = layer.kernel[static_cast<std::size_t>(o)];
      std::vector<const bfv::Ciphertext*> used;
      std::vector<const bfv::PreparedPlaintext*> pts;
      // Blocks beyond the model's memory budget are made here, for this output block only.
      std::vector<bfv::PreparedPlaintext> made;
      if (!layer.all_ready) made.reserve(inputs.size());
      for (std::size_t j = 0; j < inputs.size(); ++j) {
        used.push_back(ct_ptrs[static_cast<std::size_t>(inputs[j])]);
        if (kernel[j].param_id() != 0) {
          pts.push_back(&kernel[j]);
        } else {
          made.push_back(s.model->prepare_block(residue, li, o, j));
          pts.push_back(&made.back());
        }
      }
      // Every output block reads some input block (ConvLayout::block_used).
      bfv::Ciphertext acc = eval.multiply_accumulate(used, pts);
      const auto idx = layout.output_indices(o);
      const auto smask = s.masks.uniform(field, idx.size());
      std::vector<u64> coeffs(lin.n(), 0);
      for (std::size_t j = 0; j < idx.size(); ++j) coeffs[idx[j]] = smask[j];
      eval.sub_plain_inplace(acc, bfv::Plaintext(lin, std::move(coeffs)));
      out.push_back(bfv::save_response(lin, s.flood_lin[r]->finalize(std::move(acc), idx)));
      std::copy(smask.begin(), smask.end(),
                offset.begin() + static_cast<std::ptrdiff_t>(layout.out_channel_begin(o) * per_channel));
    }
    ch.send(static_cast<std::uint16_t>(Message::kLinearResponse), pack(out));
  }
  const auto& bv = *hp.beaver_of(residue);
  const bfv::BatchEncoder enc(hp.beaver_of(residue));
  const bfv::Evaluator beval(hp.beaver_of(residue));
  const std::size_t n = bv.n();
  const BeaverCounts want = beaver_counts(prog);
  const std::size_t sq_batches = beaver_batches(want.squares, n),
                    tr_batches = beaver_batches(want.triples, n);
  if (sq_batches + tr_batches == 0) return m;
  const net::Frame f = ch.receive();
  const auto items = unpack(f, Message::kBeaverRequest, sq_batches + 2 * tr_batches, "Beaver request");
  std::vector<std::uint32_t> all(n);
  for (std::size_t i = 0; i < n; ++i) all[i] = static_cast<std::uint32_t>(i);
  const math::Modulus& t = field.mod();
  std::vector<Bytes> out;
  for (std::size_t i = 0; i < sq_batches; ++i) {
    const auto as = s.masks.uniform(field, n), u = s.masks.uniform(field, n);
    std::vector<u64> two_as(n);
    for (std::size_t j = 0; j < n; ++j) two_as[j] = t.add(as[j], as[j]);
    bfv::Ciphertext ct =
        beval.multiply_plain(bfv::load_ciphertext(bv, items[i]), beval.prepare(enc.encode(two_as)));
    beval.sub_plain_inplace(ct, enc.encode(u));
    out.push_back(bfv::save_response(bv, s.flood_bv[r]->finalize(std::move(ct), all)));
    for (std::size_t j = 0; j < n && i * n + j < want.squares; ++j) {
      m.squares.a.push_back(as[j]);
      m.squares.a2.push_back(t.add(t.mul(as[j], as[j]), u[j]));
    }
  }
  for (std::size_t i = 0; i < tr_batches; ++i) {
    const auto as = s.masks.uniform(field, n), bs = s.masks.uniform(field, n), u = s.masks.uniform(field, n);
    const bfv::Ciphertext ca = bfv::load_ciphertext(bv, items[sq_batches + 2 * i]);
    const bfv::Ciphertext cb = bfv::load_ciphertext(bv, items[sq_batches + 2 * i + 1]);
    const auto pb = beval.prepare(enc.encode(bs)), pa = beval.prepare(enc.encode(as));
    const bfv::Ciphertext* cts[] = {&ca, &cb};
    const bfv::PreparedPlaintext* pts[] = {&pb, &pa};
    bfv::Ciphertext ct = beval.multiply_accumulate(cts, pts);
    beval.sub_plain_inplace(ct, enc.encode(u));
    out.push_back(bfv::save_response(bv, s.flood_bv[r]->finalize(std::move(ct), all)));
    const auto ab = mul(t, as, bs);
    for (std::size_t j = 0; j < n && i * n + j < want.triples; ++j) {
      m.triples.a.push_back(as[j]);
      m.triples.b.push_back(bs[j]);
      m.triples.c.push_back(t.add(ab[j], u[j]));
    }
  }
  ch.send(static_cast<std::uint16_t>(Message::kBeaverResponse), pack(out));
  return m;
}

}  // namespace veil::hybrid
