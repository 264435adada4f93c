#include "veil/protocol/ni/handler.hpp"

#include <cstdio>
#include <map>

#include "veil/ckks/serialize.hpp"
#include "veil/common/error.hpp"
#include "veil/common/file.hpp"
#include "veil/common/format.hpp"
#include "veil/common/thread_pool.hpp"
#include "veil/protocol/ni/messages.hpp"
#include "veil/rlwe/serialize.hpp"

namespace veil::protocol::ni {

namespace {

using Clock = std::chrono::steady_clock;

std::uint64_t memory_bytes(const nn::EvaluationKeys& k) {
  std::uint64_t b = k.relin.key.bytes() + k.small_relin.key.bytes();
  for (const auto& [g, key] : k.galois.keys) b += key.bytes();
  for (const auto& [g, key] : k.small_galois.keys) b += key.bytes();
  if (k.ring_switch) b += k.ring_switch->bytes();
  return b;
}

ServerInfo make_server_info(const nn::Network& net, const nn::Plan& plan, std::uint64_t max_frame_bytes) {
  ServerInfo s;
  static_cast<nn::PublicPlan&>(s) = nn::make_public_plan(net, plan);
  s.max_frame_bytes = max_frame_bytes;
  return s;
}

std::size_t mode_index(nn::Mode m) { return static_cast<std::size_t>(m); }

}  // namespace

// One planned mode: its model and evaluator.
struct Handler::Mode {
  ServedModel model;
  std::unique_ptr<nn::EncryptedNetwork> evaluator;
  int relin_level = 0;  // highest level a relinearisation runs at
  // Per-message frame limits from this mode's plan: a latency session cannot send
  // throughput-sized frames. The plan's sizes, plus room for headers and the levels a
  // client may choose above the planned ones.
  std::uint64_t max_upload_bytes = 0, max_infer_bytes = 0;
};

namespace {

// One client's session in one mode: the keys it uses, and its requests.
class Session final : public ProtocolSession {
 public:
  Session(const Handler::Mode& mode, SessionContext& ctx)
      : mode_(mode), ctx_(ctx), scope_(std::string(kName) + "/" + nn::mode_name(mode.model.plan.mode)) {}

  void on_message(const net::Frame& f, net::Channel& ch) override;
  std::uint64_t max_frame_bytes(std::uint16_t type) const override {
    switch (static_cast<MessageType>(type)) {
      case MessageType::kUploadKeys:
        return mode_.max_upload_bytes;
      case MessageType::kInfer:
        return mode_.max_infer_bytes;
      default:
        return 4096;  // KeyQuery (32 bytes), or a message refused once read
    }
  }

 private:
  // The upload's Galois keys against the plan, from their headers (before any is loaded).
  void check_galois_headers(std::span<const std::uint8_t> galois) const;

  const Handler::Mode& mode_;
  SessionContext& ctx_;
  std::string scope_;  // key cache scope: keys are checked against this mode's plan
  std::shared_ptr<const nn::EvaluationKeys> keys_;
};

void Session::check_galois_headers(std::span<const std::uint8_t> galois) const {
  const auto& plan = mode_.model.plan;
  const auto& ctx = *mode_.model.context;
  std::vector<std::pair<std::uint32_t, int>> keys;
  try {
    keys = rlwe::peek_galois_keys(ctx, galois);
  } catch (const std::exception& e) {
    throw error(ErrorCode::kBadKeys,
                std::string("rotation keys do not load for this model's parameters: ") + e.what());
  }
  // Exactly the plan's rotations (and conjugation): extra keys would only cost server memory.
  if (keys.size() != plan.galois_keys())
    throw error(ErrorCode::kBadKeys, std::to_string(keys.size()) + " Galois keys, the plan uses " +
                                         std::to_string(plan.rotation_steps.size()) + " rotations" +
                                         (plan.conjugation_key_level >= 0 ? " and the conjugation" : ""));
  std::map<std::uint32_t, int> level;
  for (const auto& [g, l] : keys) level[g] = l;
  if (plan.conjugation_key_level >= 0) {
    const auto it = level.find(ctx.conjugation_element());
    if (it == level.end() || it->second < plan.conjugation_key_level)
      throw error(ErrorCode::kBadKeys,
                  "no conjugation key at level " + std::to_string(plan.conjugation_key_level));
  }
  for (std::size_t i = 0; i < plan.rotation_steps.size(); ++i) {
    auto it = level.find(ctx.galois_element(plan.rotation_steps[i]));
    if (it == level.end() || it->second < plan.rotation_key_levels[i])
      throw error(ErrorCode::kBadKeys, "no rotation key for step " + std::to_string(plan.rotation_steps[i]) +
                                           " at level " + std::to_string(plan.rotation_key_levels[i]));
  }
}

void Session::on_message(const net::Frame& f, net::Channel& ch) {
  const auto& plan = mode_.model.plan;
  const auto& ctx = *mode_.model.context;
  switch (static_cast<MessageType>(f.type)) {
    case MessageType::kKeyQuery: {
      const KeyQuery q = decode<KeyQuery>(f);
      auto found = ctx_.key_cache().find<nn::EvaluationKeys>(q.hash, scope_);
      const bool hit = found != nullptr;
      if (hit) keys_ = std::move(found);
      ch.send(encode(KeyStatus{hit, q.hash}));
      ctx_.log("keys " + hex(q.hash, 8) + (hit ? " cached" : " not cached"));
      return;
    }
    case MessageType::kUploadKeys: {
      const auto t = Clock::now();
      const UploadKeysView u = decode_upload_keys_view(f);
      const KeyHash h = hash_keys(u.relin, u.galois, u.ring);
      auto found = ctx_.key_cache().find<nn::EvaluationKeys>(h, scope_);
      if (!found) {
        check_galois_headers(u.galois);
        nn::EvaluationKeys k;
        try {
          k.relin = rlwe::load_relin_keys(ctx, u.relin);
          k.galois = rlwe::load_galois_keys(ctx, u.galois);
          nn::load_small_ring_keys(plan, u.ring, k);
        } catch (const std::exception& e) {
          throw error(ErrorCode::kBadKeys,
                      std::string("keys do not load for this model's parameters: ") + e.what());
        }
        if (k.relin.key.level < mode_.relin_level)
          throw error(ErrorCode::kBadKeys, "relinearisation key covers levels up to " +
                                               std::to_string(k.relin.key.level) + ", the plan needs " +
                                               std::to_string(mode_.relin_level));
        const std::uint64_t bytes = memory_bytes(k);
        found = ctx_.key_cache().insert(h, scope_, std::move(k), bytes);
      }
      keys_ = std::move(found);
      ch.send(encode(KeyStatus{true, h}));
      ctx_.log("keys " + hex(h, 8) + " uploaded (" + human_bytes(f.payload.size()) + ", " +
               std::to_string(seconds_since(t)).substr(0, 5) + " s)");
      return;
    }
    case MessageType::kInfer: {
      if (!keys_)
        throw error(ErrorCode::kNoKeys,
                    "no evaluation keys in this session: upload them (or query a cached "
                    "hash) before inference");
      // The counts (u32 images, u32 ciphertexts) against the plan from the message's head,
      // before its ciphertexts are copied out or loaded; a head too short to hold them is
      // left to the decoder's refusal.
      const std::size_t want = nn::input_ciphertexts(mode_.model.network, plan);
      const auto max_batch = static_cast<std::uint32_t>(plan.packing_mode().batch_size(plan));
      if (f.payload.size() >= 8) {
        ByteReader head(f.payload);
        const std::uint32_t images = head.u32(), count = head.u32();
        if (images > max_batch)
          throw error(
              ErrorCode::kBadCiphertexts,
              std::to_string(images) + " images in one request; the limit is " + std::to_string(max_batch));
        if (count != want)
          throw error(ErrorCode::kBadCiphertexts, "the model takes " + std::to_string(want) +
                                                      " input ciphertexts, got " + std::to_string(count));
      }
      Infer req = decode<Infer>(f);
      const std::uint64_t up = f.payload.size();
      std::vector<ckks::Ciphertext> in(req.ciphertexts.size());
      for (std::size_t i = 0; i < in.size(); ++i) {
        try {
          in[i] = ckks::load_ciphertext(ctx, req.ciphertexts[i]);
        } catch (const std::exception& e) {
          throw error(ErrorCode::kBadCiphertexts, "ciphertext " + std::to_string(i) + ": " + e.what());
        }
        Bytes().swap(req.ciphertexts[i]);
      }
      // One job on the process's pool: at most veil::max_jobs() evaluations hold their
      // ciphertexts at once; this session's thread waits for its turn and evaluates.
      double queue_s = 0, eval_s = 0;
      std::vector<ckks::Ciphertext> out;
      try {
        queue_s = run_job([&] {
          const auto t = Clock::now();
          out = mode_.evaluator->evaluate(std::move(in), *keys_);
          eval_s = seconds_since(t);
        });
      } catch (const std::bad_alloc&) {
        throw;
      } catch (const net::Error&) {
        throw;
      } catch (const std::exception& e) {
        throw error(ErrorCode::kBadCiphertexts, std::string("evaluation refused the request: ") + e.what());
      }
      Result res;
      res.queue_seconds = queue_s;
      res.eval_seconds = eval_s;
      const ckks::CkksContext& result_ctx = *mode_.evaluator->result_context();
      for (const auto& c : out) res.ciphertexts.push_back(ckks::save_ciphertext(result_ctx, c, true));
      out.clear();
      const net::Frame reply = encode(res);
      res.ciphertexts.clear();
      ch.send(reply);
      char line[160];
      std::snprintf(line, sizeof line, "infer %u image(s): up %s, down %s, queue %.3f s, eval %.3f s",
                    req.images, human_bytes(up).c_str(), human_bytes(reply.payload.size()).c_str(), queue_s,
                    eval_s);
      ctx_.log(line);
      return;
    }
    default:
      throw protocol::error(protocol::ErrorCode::kUnexpectedMessage, std::string("a client does not send ") +
                                                                         message_name(f.type) + " (type " +
                                                                         std::to_string(f.type) + ")");
  }
}

}  // namespace

Handler::Handler(std::vector<ServedModel> models) {
  VEIL_REQUIRE(!models.empty(), "the non-interactive handler serves at least one mode");
  modes_.resize(nn::kPackingModeCount);
  for (auto& m : models) {
    const std::size_t i = mode_index(m.plan.mode);
    VEIL_REQUIRE(!modes_[i], "two models for " << nn::mode_name(m.plan.mode) << " mode");
    auto ms = std::make_unique<Mode>();
    for (std::size_t k = 0; k < m.network.stages.size(); ++k)
      if (m.network.stages[k].is<nn::PolyStage>())
        ms->relin_level = std::max(ms->relin_level, m.plan.stages[k].level_in);
    // Keys at any level up to the top cost at most the top level's size: relinearisation
    // plus one rotation key per planned step, each at most (top level) bytes; a fixed
    // allowance covers object and key headers and the bit-packing's rounding.
    const auto& p = m.plan;
    const std::uint64_t top_key = p.relin_key_bytes;
    const std::size_t rotations = p.rotation_steps.size() + p.small_rotation_steps.size();
    const std::uint64_t keys = top_key * (1 + rotations);
    ms->max_upload_bytes = std::max<std::uint64_t>(keys, p.relin_key_bytes + p.galois_key_bytes) +
                           p.ring_switch_key_bytes + rotations * 128 + (64 << 10);
    // Twice the planned request, so that a request with the wrong ciphertext count still
    // arrives and gets its precise answer (bad ciphertexts) with the session kept.
    ms->max_infer_bytes = 2 * p.input_bytes + (64 << 10);
    // No pre-faulted working set: a session's keys, uploaded later, would take it first
    // (cifar10-shallow: resident after set-up 3.9 -> 2.9 GiB, set-up 1 GB of page faults
    // shorter, the first image as fast; docs/benchmarks.md).
    ms->evaluator =
        std::make_unique<nn::EncryptedNetwork>(m.network, m.plan, m.context, m.plaintext_cache_bytes, false);
    largest_message_ =
        std::max({largest_message_, m.plan.relin_key_bytes + m.plan.galois_key_bytes, m.plan.input_bytes});
    // The evaluator holds what it needs of the weights; sessions read only the structure.
    m.network.drop_linear_weights();
    ms->model = std::move(m);
    modes_[i] = std::move(ms);
  }
}

Handler::~Handler() = default;

std::string Handler::protocol() const { return kName; }
std::uint16_t Handler::version() const { return kVersion; }

std::string Handler::offers() const {
  std::string s;
  for (const auto& m : modes_)
    if (m) s += std::string(s.empty() ? "" : ", ") + nn::mode_name(m->model.plan.mode);
  return std::string(kName) + " v" + std::to_string(kVersion) + " (" + s + ")";
}

std::uint64_t Handler::max_frame_bytes() const { return 2 * largest_message_ + (1 << 20); }

const char* Handler::message_name(std::uint16_t type) const { return ni::message_name(type); }

std::unique_ptr<ProtocolSession> Handler::open(const Hello& hello, net::Channel& ch, SessionContext& ctx) {
  const OpenBody body = decode_open(hello.body);
  const Mode* mode = modes_[mode_index(body.mode)].get();
  if (!mode)
    throw protocol::error(protocol::ErrorCode::kUnavailable, std::string("this server does not offer ") +
                                                                 nn::mode_name(body.mode) +
                                                                 " mode (it offers " + offers() + ")");
  ch.send(encode(make_server_info(mode->model.network, mode->model.plan, ctx.max_frame_bytes())));
  ctx.log(std::string(nn::mode_name(body.mode)) + " mode");
  return std::make_unique<Session>(*mode, ctx);
}

}  // namespace veil::protocol::ni
