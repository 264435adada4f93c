#include "veil/protocol/hybrid/client.hpp"

#include "veil/bfv/serialize.hpp"
#include "veil/common/error.hpp"
#include "veil/hybrid/public_program.hpp"
#include "veil/mpc/channel_exchange.hpp"

namespace veil::protocol::hybrid {

namespace lib = veil::hybrid;

namespace {

using Clock = std::chrono::steady_clock;

net::Error bad(const std::string& message) {
  return protocol::error(protocol::ErrorCode::kBadMessage, message);
}

// Counts one stage's cost from the channel's counters and the clock.
class StageMeter {
 public:
  StageMeter(const net::Channel& ch, StageStats& s) : ch_(ch), s_(s), before_(ch.stats()) {}
  ~StageMeter() {
    const auto& now = ch_.stats();
    ++s_.runs;
    s_.seconds += std::chrono::duration<double>(Clock::now() - t_).count();
    s_.bytes_sent += now.bytes_sent - before_.bytes_sent;
    s_.bytes_received += now.bytes_received - before_.bytes_received;
    s_.rounds += now.rounds - before_.rounds;
  }

 private:
  const net::Channel& ch_;
  StageStats& s_;
  net::ChannelStats before_;
  Clock::time_point t_ = Clock::now();
};

// The client's side of a multi-round part: the peer's bytes that do not parse end the
// session as they do on the server (kBadFrame), so that callers see one kind of failure.
template <class Fn>
void multi_round(const char* what, Fn&& fn) {
  try {
    fn();
  } catch (const net::Error&) {
    throw;
  } catch (const std::bad_alloc&) {
    throw;
  } catch (const std::invalid_argument&) {
    throw;
  } catch (const std::runtime_error& e) {
    throw net::Error(net::ErrorCode::kBadFrame, std::string(what) + " broke off: " + e.what());
  }
}

}  // namespace

Client::Client(std::unique_ptr<net::Channel> channel, const std::string& name) : Client(*channel, name) {
  owned_ = std::move(channel);
}

Client::Client(net::Channel& channel, const std::string& name) : channel_(&channel) {
  info_ = decode<ServerInfo>(exchange(encode(Hello{kName, kVersion, name, encode_open()})));
  // Everything the roles use comes from the public program, validated on load; the
  // parameter sets must be the ones it implies (the server cannot choose them).
  try {
    program_ = lib::load_public_program(info_.program);
  } catch (const std::exception& e) {
    throw bad(std::string("ServerInfo: ") + e.what());
  }
  if (program_.input != info_.input || program_.mean != info_.mean || program_.std != info_.std ||
      program_.classes != info_.classes)
    throw bad("ServerInfo: the input shape, normalisation or classes differ from the public program's");
  try {
    params_ = lib::he_parameters(program_);
  } catch (const std::exception& e) {
    throw bad(std::string("ServerInfo: no parameters for the public program: ") + e.what());
  }
  if (parameter_blobs(params_) != std::make_pair(info_.linear_parameters, info_.beaver_parameters))
    throw bad(
        "ServerInfo: the server's BFV parameters are not those its public program implies "
        "(hybrid::he_parameters); refusing to use them");
  try {
    pre_ = std::make_unique<lib::PreprocessClient>(program_, params_);
  } catch (const std::invalid_argument& e) {
    throw bad(std::string("ServerInfo: the public program's layers do not fit the parameters: ") + e.what());
  }
}

Client::~Client() = default;

double Client::now() const { return std::chrono::duration<double>(Clock::now() - start_).count(); }

void Client::send_keys() {
  StageMeter meter(*channel_, stats_.keys);
  // PreprocessClient sends the Keys frame itself; the acknowledgement (or the server's
  // refusal) follows.
  try {
    pre_->send_keys(*channel_);
  } catch (const net::Error& e) {
    send_failed(e);
  }
  decode<KeysAccepted>(channel_->receive());
}

MaterialId Client::preprocess() {
  StageMeter meter(*channel_, stats_.preprocess);
  const Preprocessing ack = decode<Preprocessing>(exchange(encode(Preprocess{})));
  for (const auto& h : materials_)
    if (h.id == ack.id) throw bad("Preprocessing: the server issued material id " + hex(ack.id) + " twice");
  lib::Material m;
  multi_round("preprocessing", [&] { m = pre_->run(*channel_); });
  materials_.push_back(Held{ack.id, std::move(m), now()});
  return ack.id;
}

std::vector<double> Client::infer(const std::vector<double>& input) {
  if (static_cast<int>(input.size()) != program_.input.size())
    throw std::invalid_argument("input has " + std::to_string(input.size()) + " values, the model expects " +
                                std::to_string(program_.input.size()));
  // The server drops materials by age; do the same rather than be refused.
  while (!materials_.empty() && now() - materials_.front().made > info_.max_material_age_s)
    materials_.pop_front();
  if (materials_.empty())
    throw std::invalid_argument("no preprocessing material left: call preprocess() before infer()");
  Held h = std::move(materials_.front());
  materials_.pop_front();
  StageMeter meter(*channel_, stats_.online);
  const OnlineAccepted ack = decode<OnlineAccepted>(exchange(encode(Online{h.id})));
  if (ack.id != h.id) throw bad("OnlineAccepted names material " + hex(ack.id) + ", not " + hex(h.id));
  const mpc::Field field = program_.field();
  std::vector<double> logits;
  multi_round("the online stage", [&] {
    mpc::ChannelExchange ex(*channel_, mpc::Role::kClient, field,
                            static_cast<std::uint16_t>(lib::Message::kShares));
    logits = lib::run_client(program_, std::move(h.material), input, ex);
  });
  return logits;
}

void Client::send_failed(const net::Error& e) {
  // When the server has closed the connection (it refuses further requests while shutting
  // down), the reason it sent before closing is thrown rather than the broken pipe.
  if (!e.is(net::ErrorCode::kClosed) && !e.is(net::ErrorCode::kIo)) throw e;
  net::Frame reason;
  try {
    reason = channel_->receive();
  } catch (const net::Error&) {
    reason.type = 0;  // nothing readable: report the broken connection
  }
  if (reason.type == static_cast<std::uint16_t>(HostMessage::kError)) {
    const auto m = decode_error(reason);
    throw net::Error(m.code, error_name(m.code), m.text);
  }
  throw e;
}

net::Frame Client::exchange(const net::Frame& request) {
  try {
    channel_->send(request);
  } catch (const net::Error& e) {
    send_failed(e);
  }
  return channel_->receive();
}

void Client::bye() noexcept {
  try {
    channel_->send(encode(Bye{}));
  } catch (...) {
  }
  channel_->close();
}

}  // namespace veil::protocol::hybrid
