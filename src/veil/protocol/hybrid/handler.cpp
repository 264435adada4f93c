#include "veil/protocol/hybrid/handler.hpp"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <deque>
#include <map>
#include <tuple>

#include "veil/bfv/serialize.hpp"
#include "veil/common/error.hpp"
#include "veil/common/format.hpp"
#include "veil/common/rng.hpp"
#include "veil/hybrid/public_program.hpp"
#include "veil/mpc/channel_exchange.hpp"
#include "veil/protocol/hybrid/messages.hpp"

namespace veil::protocol::hybrid {

namespace lib = veil::hybrid;

namespace {

using Clock = std::chrono::steady_clock;

// Runs one multi-round part (after its acknowledgement). Its frames are not messages the
// host's loop could resynchronise on, so every failure ends the session: the peer's bytes
// that do not parse (std::runtime_error) are reported with the transport's kBadFrame,
// transport errors and programming errors (std::invalid_argument) pass through.
template <class Fn>
void multi_round(const char* what, Fn&& fn) {
  try {
    fn();
  } catch (const net::Error& e) {
    if (net::error_code_name(e.code())) throw;
    throw net::Error(net::ErrorCode::kBadFrame, std::string(what) + " broke off: " + e.what());
  } catch (const std::bad_alloc&) {
    throw;
  } catch (const std::invalid_argument&) {
    throw;
  } catch (const std::runtime_error& e) {
    throw net::Error(net::ErrorCode::kBadFrame, std::string(what) + " broke off: " + e.what());
  }
}

// Largest serialised ciphertext (or public key: two polynomials) of a context, uncompressed.
std::uint64_t ciphertext_bytes(const bfv::BfvContext& ctx) {
  return 2 * ctx.n() * ctx.num_q() * sizeof(std::uint64_t) + 256;
}

// One client's session: its keys and its stored materials.
class Session final : public ProtocolSession {
 public:
  Session(std::shared_ptr<const lib::ServerModel> model, const HandlerOptions& options, SessionContext& ctx)
      : model_(model), options_(options), ctx_(ctx), pre_(std::move(model)) {
    random_bytes(salt_);
  }
  void on_message(const net::Frame& f, net::Channel& ch) override;
  // What the host checks from a frame's header before reading it: the keys message holds
  // two public keys; Preprocess and Online name a material id. The frames of the
  // exchanges they start are read inside on_message under the host's frame limit.
  std::uint64_t max_frame_bytes(std::uint16_t type) const override {
    if (type == static_cast<std::uint16_t>(lib::Message::kKeys)) {
      const auto& hp = model_->params();
      std::uint64_t keys = 4096;
      for (int r = 0; r < hp.residues(); ++r)
        keys += ciphertext_bytes(*hp.linear_of(r)) + ciphertext_bytes(*hp.beaver_of(r));
      return keys;
    }
    return 4096;
  }

 private:
  enum class Spent { kUsed, kExpired };
  struct Stored {
    lib::Material material;
    Clock::time_point made;
  };
  void keys(const net::Frame& f, net::Channel& ch);
  void preprocess(const net::Frame& f, net::Channel& ch);
  void online(const net::Frame& f, net::Channel& ch);
  void expire();
  void remember(const MaterialId& id, Spent why);
  MaterialId next_id();

  std::shared_ptr<const lib::ServerModel> model_;
  const HandlerOptions& options_;
  SessionContext& ctx_;
  lib::PreprocessServer pre_;
  std::map<MaterialId, Stored> store_;  // ids start with a big-endian counter: oldest first
  // Ids no longer stored, newest last, so a second use is refused by name (bounded).
  std::deque<std::pair<MaterialId, Spent>> spent_;
  std::uint64_t counter_ = 0;
  std::array<std::uint8_t, 8> salt_{};
};

constexpr std::size_t kMaxSpentRecords = 4096;

MaterialId Session::next_id() {
  MaterialId id{};
  const std::uint64_t c = counter_++;
  for (int i = 0; i < 8; ++i) id[static_cast<std::size_t>(i)] = static_cast<std::uint8_t>(c >> (56 - 8 * i));
  // Fresh random bytes per id: ids of other sessions (or of this one, not yet issued)
  // cannot be guessed.
  std::array<std::uint8_t, 8> r{};
  random_bytes(r);
  for (std::size_t i = 0; i < 8; ++i) id[8 + i] = r[i] ^ salt_[i];
  return id;
}

void Session::remember(const MaterialId& id, Spent why) {
  spent_.emplace_back(id, why);
  if (spent_.size() > kMaxSpentRecords) spent_.pop_front();
}

void Session::expire() {
  const auto now = Clock::now();
  for (auto it = store_.begin(); it != store_.end();) {
    if (std::chrono::duration<double>(now - it->second.made).count() > options_.max_material_age_s) {
      remember(it->first, Spent::kExpired);
      ctx_.log("material " + hex(it->first).substr(0, 16) + " expired");
      it = store_.erase(it);
    } else {
      ++it;
    }
  }
}

void Session::on_message(const net::Frame& f, net::Channel& ch) {
  switch (f.type) {
    case static_cast<std::uint16_t>(lib::Message::kKeys):
      return keys(f, ch);
    case static_cast<std::uint16_t>(MessageType::kPreprocess):
      return preprocess(f, ch);
    case static_cast<std::uint16_t>(MessageType::kOnline):
      return online(f, ch);
    default:
      throw protocol::error(protocol::ErrorCode::kUnexpectedMessage, std::string("a client does not send ") +
                                                                         message_name(f.type) + " (type " +
                                                                         std::to_string(f.type) + ") now");
  }
}

void Session::keys(const net::Frame& f, net::Channel& ch) {
  const auto t = Clock::now();
  try {
    pre_.receive_keys(f);
  } catch (const std::bad_alloc&) {
    throw;
  } catch (const std::exception& e) {
    throw error(ErrorCode::kBadKeys,
                std::string("public keys do not load for this model's parameters: ") + e.what());
  }
  ch.send(encode(KeysAccepted{}));
  ctx_.log("public keys (" + human_bytes(f.payload.size()) + ", " +
           std::to_string(seconds_since(t)).substr(0, 5) + " s)");
}

void Session::preprocess(const net::Frame& f, net::Channel& ch) {
  decode<Preprocess>(f);
  if (!pre_.has_keys())
    throw error(ErrorCode::kNoKeys, "no public keys in this session: send them before preprocessing");
  expire();
  if (store_.size() >= options_.max_materials)
    throw error(ErrorCode::kMaterialLimit, std::to_string(store_.size()) +
                                               " unused materials are stored (the limit): run inferences "
                                               "with them before preprocessing more");
  const MaterialId id = next_id();
  const auto t = Clock::now();
  const std::uint64_t up = ch.bytes_received(), down = ch.bytes_sent();
  ch.send(encode(Preprocessing{id}));
  lib::Material m;
  multi_round("preprocessing", [&] { m = pre_.run(ch); });
  store_.emplace(id, Stored{std::move(m), Clock::now()});
  char line[200];
  std::snprintf(line, sizeof line, "preprocessed %s: up %s, down %s, %.3f s (%zu stored)",
                hex(id).substr(0, 16).c_str(), human_bytes(ch.bytes_received() - up).c_str(),
                human_bytes(ch.bytes_sent() - down).c_str(), seconds_since(t), store_.size());
  ctx_.log(line);
}

void Session::online(const net::Frame& f, net::Channel& ch) {
  const Online req = decode<Online>(f);
  if (!pre_.has_keys())
    throw error(ErrorCode::kNoKeys, "no public keys in this session: send them, then preprocess, then infer");
  expire();
  auto it = store_.find(req.id);
  if (it == store_.end()) {
    const std::string id = hex(req.id);
    for (const auto& [spent, why] : spent_)
      if (spent == req.id)
        throw why == Spent::kUsed
            ? error(ErrorCode::kMaterialUsed,
                    "material " + id + " was used by an earlier inference; each is used exactly once")
            : error(ErrorCode::kMaterialExpired, "material " + id + " is older than " +
                                                     std::to_string(options_.max_material_age_s) +
                                                     " s and was dropped: preprocess again");
    throw error(ErrorCode::kUnknownMaterial, "material " + id + " was not issued in this session");
  }
  // Taken out before anything else can fail: used exactly once, even if this run breaks off.
  lib::Material m = std::move(it->second.material);
  store_.erase(it);
  remember(req.id, Spent::kUsed);
  const auto t = Clock::now();
  const std::uint64_t up = ch.bytes_received(), down = ch.bytes_sent();
  ch.send(encode(OnlineAccepted{req.id}));
  const lib::Program& prog = model_->program();
  const mpc::Field field = prog.field();
  lib::OnlineStats stats;
  multi_round("the online stage", [&] {
    mpc::ChannelExchange ex(ch, mpc::Role::kServer, field, static_cast<std::uint16_t>(lib::Message::kShares));
    lib::run_server(prog, std::move(m), ex, &stats);
  });
  char line[200];
  std::snprintf(line, sizeof line, "inference with %s: up %s, down %s, %d exchanges, %.3f s",
                hex(req.id).substr(0, 16).c_str(), human_bytes(ch.bytes_received() - up).c_str(),
                human_bytes(ch.bytes_sent() - down).c_str(), stats.rounds, seconds_since(t));
  ctx_.log(line);
}

}  // namespace

Handler::Handler(std::shared_ptr<const lib::ServerModel> model, HandlerOptions options)
    : model_(std::move(model)), options_(std::move(options)) {
  VEIL_REQUIRE(model_ != nullptr, "the hybrid handler needs a model");
  VEIL_REQUIRE(options_.max_materials >= 1 && options_.max_materials <= 1024,
               "materials per session: " << options_.max_materials << " is outside 1..1024");
  VEIL_REQUIRE(options_.max_material_age_s > 0, "the material age limit must be positive");
  const lib::Program& prog = model_->program();
  const auto& hp = model_->params();
  public_program_ = lib::save_public_program(prog);
  std::tie(linear_parameters_, beaver_parameters_) = parameter_blobs(hp);
  // The largest frame a client sends: its keys, one layer's Enc(r), the Beaver batches,
  // or one share vector.
  // Per prime of the share ring (each runs its own preprocessing exchange).
  largest_message_ = 0;
  for (int r = 0; r < hp.residues(); ++r) {
    const std::uint64_t lin_ct = ciphertext_bytes(*hp.linear_of(r)),
                        bv_ct = ciphertext_bytes(*hp.beaver_of(r));
    largest_message_ = std::max(largest_message_, lin_ct + bv_ct);
    for (const auto& layer : model_->layers(r))
      largest_message_ = std::max<std::uint64_t>(
          largest_message_, static_cast<std::uint64_t>(layer.layout.input_blocks()) * lin_ct);
    const lib::ProgramCost c = lib::cost(prog);
    const std::uint64_t n = hp.beaver_of(r)->n();
    const std::uint64_t batches = (static_cast<std::uint64_t>(c.squares) + n - 1) / n +
                                  2 * ((static_cast<std::uint64_t>(c.triples) + n - 1) / n);
    largest_message_ = std::max(largest_message_, batches * bv_ct);
  }
  // The keys frame holds every prime's pair.
  std::uint64_t keys = 0;
  for (int r = 0; r < hp.residues(); ++r)
    keys += ciphertext_bytes(*hp.linear_of(r)) + ciphertext_bytes(*hp.beaver_of(r));
  largest_message_ = std::max(largest_message_, keys);
  std::uint64_t widest = static_cast<std::uint64_t>(prog.input.size());
  for (const auto& op : prog.ops) widest = std::max<std::uint64_t>(widest, op.out.size());
  largest_message_ = std::max(largest_message_, 8 * widest * static_cast<std::uint64_t>(hp.residues()) + 8);
}

Handler::~Handler() = default;

std::string Handler::protocol() const { return kName; }
std::uint16_t Handler::version() const { return kVersion; }
std::string Handler::offers() const {
  return std::string(kName) + " v" + std::to_string(kVersion) + " (" + model_->program().name + ")";
}
std::uint64_t Handler::max_frame_bytes() const { return 2 * largest_message_ + (1 << 20); }
const char* Handler::message_name(std::uint16_t type) const { return hybrid::message_name(type); }

std::unique_ptr<ProtocolSession> Handler::open(const Hello& hello, net::Channel& ch, SessionContext& ctx) {
  decode_open(hello.body);
  const lib::Program& prog = model_->program();
  ServerInfo info;
  info.model = prog.name;
  info.dataset = options_.dataset;
  info.input = prog.input;
  info.mean = prog.mean;
  info.std = prog.std;
  info.classes = prog.classes;
  info.program = public_program_;
  info.linear_parameters = linear_parameters_;
  info.beaver_parameters = beaver_parameters_;
  info.max_materials = static_cast<std::uint32_t>(options_.max_materials);
  info.max_material_age_s = options_.max_material_age_s;
  info.max_frame_bytes = ctx.max_frame_bytes();
  ch.send(encode(info));
  return std::make_unique<Session>(model_, options_, ctx);
}

}  // namespace veil::protocol::hybrid
