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
  std::uint64_t max_upload_bytes = 0, max_piece_bytes = 0, max_infer_bytes = 0;
  std::uint64_t max_galois_bytes = 0;  // the Galois key set an upload may announce
  // The plan's Galois keys in each ring (big, smaller): element -> (rotation step, or 0
  // for the conjugation; lowest level).
  using PlannedKeys = std::map<std::uint32_t, std::pair<int, int>>;
  PlannedKeys galois[2];
  ckks::ContextPtr contexts[2];  // the big ring's, the smaller ring's (when it switches)
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
      case MessageType::kGaloisKeysPiece:
        return mode_.max_piece_bytes;
      case MessageType::kInfer:
        return mode_.max_infer_bytes;
      default:
        return 4096;  // KeyQuery (32 bytes), or a message refused once read
    }
  }

 private:
  // One Galois key set of an upload, arriving in pieces.
  struct KeySet {
    KeySet(const rlwe::Context& ctx, KeySetPieces announced) : reader(ctx), announced(announced) {}
    rlwe::GaloisKeyPieceReader reader;
    KeySetPieces announced;
    std::uint64_t received = 0;
    std::uint32_t pieces = 0;
  };
  // An upload between its UploadKeys and its last GaloisKeysPiece.
  struct Upload {
    Clock::time_point start = Clock::now();
    // The hash as hash_keys(relin, galois, ring) makes it: relin and the big ring's Galois
    // set, then the ring blob (nn::save_small_ring_keys: its parts length-prefixed as the
    // hash's blobs are).
    KeyHasher hash;
    Bytes small_relin, ring_switch;  // hashed after the big ring's set
    nn::EvaluationKeys keys;
    std::vector<KeySet> sets;  // the big ring's; the smaller ring's when it switches
    std::size_t current = 0;   // the set the next piece belongs to
    std::uint64_t pieces_left = 0;
    // A piece or the UploadKeys was refused (answered with an Error): the rest of the
    // pieces, already on their way, are dropped without a reply.
    bool failed = false;
  };
  void start_upload(const net::Frame& f);
  // Returns whether the upload is complete.
  bool take_piece(const net::Frame& f);
  // The completed upload's keys, cached; answers KeyStatus.
  void finish_upload(net::Channel& ch);
  // A piece's Galois keys (ring 0 big, 1 smaller) against the plan, from their headers
  // (before any is loaded).
  void check_galois_headers(std::size_t ring, const std::vector<std::pair<std::uint32_t, int>>& keys) const;
  // Ring `ring`'s complete set against the plan: none missing.
  void check_galois_complete(std::size_t ring, const rlwe::GaloisKeys& held) const;

  const Handler::Mode& mode_;
  SessionContext& ctx_;
  std::string scope_;  // key cache scope: keys are checked against this mode's plan
  std::shared_ptr<const nn::EvaluationKeys> keys_;
  std::unique_ptr<Upload> upload_;
};

const char* ring_name(std::size_t ring) { return ring == 0 ? "" : "the smaller ring's "; }

std::string key_name(std::size_t ring, int step) {
  return ring_name(ring) +
         (step == 0 ? std::string("conjugation key") : "rotation key for step " + std::to_string(step));
}

void Session::check_galois_headers(std::size_t ring,
                                   const std::vector<std::pair<std::uint32_t, int>>& keys) const {
  const auto& plan = mode_.model.plan;
  const auto& planned = mode_.galois[ring];
  // Exactly the plan's rotations (and conjugation): extra keys would only cost server memory.
  for (const auto& [g, level] : keys) {
    const auto it = planned.find(g);
    if (it == planned.end())
      throw error(
          ErrorCode::kBadKeys,
          std::string(ring_name(ring)) + "Galois key for element " + std::to_string(g) +
              " is for a rotation the plan does not use; it uses " +
              std::to_string(ring == 0 ? plan.rotation_steps.size() : plan.small_rotation_steps.size()) +
              " rotations" +
              ((ring == 0 ? plan.conjugation_key_level : plan.small_conjugation_key_level) >= 0
                   ? " and the conjugation"
                   : ""));
    const auto [step, need] = it->second;
    if (level < need)
      throw error(ErrorCode::kBadKeys, key_name(ring, step) + " at level " + std::to_string(level) +
                                           ", the plan needs level " + std::to_string(need));
  }
}

void Session::check_galois_complete(std::size_t ring, const rlwe::GaloisKeys& held) const {
  // Every key is one of the plan's (check_galois_headers) and none is there twice (the
  // reader): the plan's count means all of them.
  if (held.keys.size() == mode_.galois[ring].size()) return;
  for (const auto& [g, need] : mode_.galois[ring])
    if (!held.has(g))
      throw error(ErrorCode::kBadKeys,
                  "no " + key_name(ring, need.first) + " at level " + std::to_string(need.second));
}

void Session::start_upload(const net::Frame& f) {
  const auto& plan = mode_.model.plan;
  const UploadKeysView u = decode_upload_keys_view(f);
  const bool two_rings = mode_.contexts[1] != nullptr;
  // Held from here, refused until its keys load: if anything below refuses the upload,
  // the pieces it announced are dropped unanswered as they come (one answer per upload).
  upload_ = std::make_unique<Upload>();
  upload_->failed = true;
  upload_->pieces_left = std::uint64_t{u.galois.pieces} + u.small_galois.pieces;
  for (std::size_t ring = 0; ring < 2; ++ring) {
    const KeySetPieces& k = ring == 0 ? u.galois : u.small_galois;
    if (ring == 1 && !two_rings) {
      if (k.pieces != 0 || k.bytes != 0)
        throw error(ErrorCode::kBadKeys,
                    "Galois keys for a smaller ring announced, but this plan runs in one ring");
      continue;
    }
    const std::uint64_t max_pieces = mode_.galois[ring].size() + 1;
    if (k.pieces == 0 || k.pieces > max_pieces)
      throw error(ErrorCode::kBadKeys, "UploadKeys announces " + std::to_string(k.pieces) + " pieces of " +
                                           ring_name(ring) + "Galois keys; this plan's come in 1 to " +
                                           std::to_string(max_pieces));
    if (k.bytes > mode_.max_galois_bytes)
      throw error(ErrorCode::kBadKeys, "UploadKeys announces " + human_bytes(k.bytes) + " of " +
                                           ring_name(ring) + "Galois keys; this plan's take at most " +
                                           human_bytes(mode_.max_galois_bytes));
    upload_->sets.emplace_back(*mode_.contexts[ring], k);
  }
  Upload& r = *upload_;
  r.hash.blob(u.relin);
  r.hash.begin(u.galois.bytes);
  r.small_relin.assign(u.small_relin.begin(), u.small_relin.end());
  r.ring_switch.assign(u.ring_switch.begin(), u.ring_switch.end());
  nn::EvaluationKeys& k = r.keys;
  try {
    k.relin = rlwe::load_relin_keys(*mode_.model.context, u.relin);
    nn::load_small_ring_switching_keys(plan, u.small_relin, u.ring_switch, k);
  } catch (const std::exception& e) {
    throw error(ErrorCode::kBadKeys,
                std::string("keys do not load for this model's parameters: ") + e.what());
  }
  if (k.relin.key.level < mode_.relin_level)
    throw error(ErrorCode::kBadKeys, "relinearisation key covers levels up to " +
                                         std::to_string(k.relin.key.level) + ", the plan needs " +
                                         std::to_string(mode_.relin_level));
  r.failed = false;
}

bool Session::take_piece(const net::Frame& f) {
  Upload& u = *upload_;
  --u.pieces_left;
  if (u.failed) return false;
  u.failed = true;  // until the piece is taken
  const std::span<const std::uint8_t> piece = decode_galois_keys_piece_view(f);
  const std::size_t ring = u.current;
  KeySet& set = u.sets[ring];
  set.received += piece.size();
  ++set.pieces;
  if (set.received > set.announced.bytes)
    throw error(ErrorCode::kBadKeys, std::string(ring_name(ring)) + "Galois key pieces exceed the " +
                                         human_bytes(set.announced.bytes) + " their UploadKeys announced");
  rlwe::GaloisKeys& into = ring == 0 ? u.keys.galois : u.keys.small_galois;
  try {
    check_galois_headers(ring, set.reader.peek(piece));
    set.reader.read(piece, into);
  } catch (const net::Error&) {
    throw;
  } catch (const std::exception& e) {
    throw error(ErrorCode::kBadKeys, std::string(ring_name(ring)) +
                                         "Galois keys do not load for this model's parameters: " + e.what());
  }
  u.hash.update(piece);
  if (set.pieces < set.announced.pieces) {
    u.failed = false;
    return false;
  }
  // The set's last piece.
  if (set.received != set.announced.bytes || !set.reader.complete())
    throw error(ErrorCode::kBadKeys, std::string(ring_name(ring)) + "Galois key set ends after " +
                                         human_bytes(set.received) + ", short of what it announced");
  check_galois_complete(ring, into);
  if (++u.current < u.sets.size()) {
    // The ring blob: its length, then its parts as blobs (the smaller ring's Galois set
    // arriving next).
    const KeySetPieces& next = u.sets[u.current].announced;
    u.hash.begin(24 + u.small_relin.size() + next.bytes + u.ring_switch.size());
    u.hash.blob(u.small_relin);
    u.hash.begin(next.bytes);
    u.failed = false;
    return false;
  }
  u.failed = false;
  return true;
}

void Session::finish_upload(net::Channel& ch) {
  Upload& u = *upload_;
  if (u.sets.size() > 1)
    u.hash.blob(u.ring_switch);
  else
    u.hash.begin(0);  // no ring blob
  const KeyHash h = u.hash.finish();
  auto found = ctx_.key_cache().find<nn::EvaluationKeys>(h, scope_);
  if (!found) {
    const std::uint64_t bytes = memory_bytes(u.keys);
    found = ctx_.key_cache().insert(h, scope_, std::move(u.keys), bytes);
  }
  keys_ = std::move(found);
  ch.send(encode(KeyStatus{true, h}));
  std::uint64_t bytes = 0, pieces = 0;
  for (const auto& set : u.sets) {
    bytes += set.received;
    pieces += set.pieces;
  }
  ctx_.log("keys " + hex(h, 8) + " uploaded (" + human_bytes(bytes) + " of Galois keys in " +
           std::to_string(pieces) + " pieces, " + std::to_string(seconds_since(u.start)).substr(0, 5) +
           " s)");
}

void Session::on_message(const net::Frame& f, net::Channel& ch) {
  const auto& plan = mode_.model.plan;
  const auto& ctx = *mode_.model.context;
  const auto type = static_cast<MessageType>(f.type);
  if (upload_ && type != MessageType::kGaloisKeysPiece) {
    const std::uint64_t left = upload_->pieces_left;
    upload_.reset();
    throw protocol::error(protocol::ErrorCode::kUnexpectedMessage,
                          std::string(message_name(f.type)) + " in the middle of a key upload (" +
                              std::to_string(left) +
                              " GaloisKeysPiece message(s) still to come); the upload is dropped");
  }
  if (!upload_ && type == MessageType::kGaloisKeysPiece)
    throw protocol::error(protocol::ErrorCode::kUnexpectedMessage,
                          "GaloisKeysPiece without an UploadKeys before it");
  switch (type) {
    case MessageType::kKeyQuery: {
      const KeyQuery q = decode<KeyQuery>(f);
      auto found = ctx_.key_cache().find<nn::EvaluationKeys>(q.hash, scope_);
      const bool hit = found != nullptr;
      if (hit) keys_ = std::move(found);
      ch.send(encode(KeyStatus{hit, q.hash}));
      ctx_.log("keys " + hex(q.hash, 8) + (hit ? " cached" : " not cached"));
      return;
    }
    case MessageType::kUploadKeys:
    case MessageType::kGaloisKeysPiece: {
      // An upload ends with its last piece, taken or refused (or at once, refused, when it
      // announced none).
      struct EndAfterLast {
        std::unique_ptr<Upload>& u;
        ~EndAfterLast() {
          if (u && u->pieces_left == 0) u.reset();
        }
      } end{upload_};
      if (type == MessageType::kUploadKeys)
        start_upload(f);
      else if (take_piece(f))
        finish_upload(ch);
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
    // UploadKeys holds the relinearisation keys (both rings, at their top levels) and the
    // ring-switching key; the pieces the Galois keys, kKeyPieceBytes each or one key when a
    // key alone is larger. A Galois key at any level costs at most the top level's size (a
    // client may choose levels above the planned ones), bounding the sets' announced bytes;
    // a fixed allowance covers object and key headers and the bit-packing's rounding.
    const auto& p = m.plan;
    const std::uint64_t top_key = p.relin_key_bytes;
    ms->max_upload_bytes = p.relin_key_bytes + p.ring_switch_key_bytes + (64 << 10);
    ms->max_piece_bytes = std::max<std::uint64_t>(kKeyPieceBytes, top_key) + (64 << 10);
    const std::size_t galois_keys = p.galois_keys() + p.small_rotation_steps.size() + 1;
    ms->max_galois_bytes = top_key * galois_keys + galois_keys * 128 + (64 << 10);
    ms->contexts[0] = m.context;
    if (p.small_params) ms->contexts[1] = nn::result_context(p, m.context);
    const auto plan_keys = [](const rlwe::Context& c, const std::vector<int>& steps,
                              const std::vector<int>& levels, int conjugation_level) {
      Mode::PlannedKeys keys;
      for (std::size_t r = 0; r < steps.size(); ++r) keys[c.galois_element(steps[r])] = {steps[r], levels[r]};
      if (conjugation_level >= 0) keys[c.conjugation_element()] = {0, conjugation_level};
      return keys;
    };
    ms->galois[0] = plan_keys(*m.context, p.rotation_steps, p.rotation_key_levels, p.conjugation_key_level);
    if (p.small_params)
      ms->galois[1] = plan_keys(*ms->contexts[1], p.small_rotation_steps, p.small_rotation_key_levels,
                                p.small_conjugation_key_level);
    // Twice the planned request, so that a request with the wrong ciphertext count still
    // arrives and gets its precise answer (bad ciphertexts) with the session kept.
    ms->max_infer_bytes = 2 * p.input_bytes + (64 << 10);
    // No pre-faulted working set: a session's keys, uploaded later, would take it first
    // (cifar10-shallow: resident after set-up 3.9 -> 2.9 GiB, set-up 1 GB of page faults
    // shorter, the first image as fast; docs/benchmarks.md).
    // The evaluator takes the weights (moved, never copied: 380 MB for cifar10-shallow,
    // which set-up held twice); sessions read only the structure, kept here.
    std::vector<nn::SparseMatrix> weights = m.network.take_linear_weights();
    nn::Network weighted = m.network;
    weighted.put_linear_weights(std::move(weights));
    ms->evaluator = std::make_unique<nn::EncryptedNetwork>(std::move(weighted), m.plan, m.context,
                                                           m.plaintext_cache_bytes, false);
    largest_message_ =
        std::max({largest_message_, ms->max_upload_bytes, ms->max_piece_bytes, m.plan.input_bytes});
    ms->model = std::move(m);
    modes_[i] = std::move(ms);
  }
}

Handler::~Handler() = default;

nn::WeightForms Handler::weight_forms() const {
  const auto& m = modes_[static_cast<std::size_t>(nn::Mode::kLatency)];
  return m && m->evaluator ? m->evaluator->weight_forms() : nn::WeightForms{};
}

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
