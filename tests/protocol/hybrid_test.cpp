// The hybrid protocol with both roles in one process: the host and its hybrid handler on
// one thread, the client role on another, over an in-memory channel pair (the same code
// runs over TCP). The client holds only the public program; its logits are compared with
// the plain network's. Refusals (material reused, unknown, requested before the keys,
// over the store's limits) are answered by name and the session goes on.
#include <gtest/gtest.h>

#include <fstream>
#include <functional>
#include <iterator>
#include <random>
#include <thread>

#include "hybrid/hybrid_test_util.hpp"
#include "nn/nn_test_util.hpp"
#include "veil/bfv/serialize.hpp"
#include "veil/hybrid/public_program.hpp"
#include "veil/net/memory_channel.hpp"
#include "veil/nn/onnx/import.hpp"
#include "veil/nn/passes.hpp"
#include "veil/nn/plain_eval.hpp"
#include "veil/protocol/host.hpp"
#include "veil/protocol/hybrid/client.hpp"
#include "veil/protocol/hybrid/handler.hpp"

namespace veil {
namespace {

namespace hp = protocol::hybrid;
using Clock = std::chrono::steady_clock;

using nn::test::mnist_samples;
using nn::test::source_path;

// A network, its program and the server's prepared model.
struct Model {
  nn::Network network;
  hybrid::Program program;
  std::shared_ptr<const hybrid::ServerModel> server;
  std::vector<std::vector<double>> samples;  // normalised inputs not used for calibration
};

// mnist-cryptonets, calibrated on sample images 0-9 (lowered once for all tests).
const Model& cryptonets() {
  static const Model m = [] {
    Model m;
    m.network =
        nn::lower(nn::load_onnx(source_path("models/mnist-cryptonets.onnx")), hybrid::lower_options());
    hybrid::ProgramOptions po;
    const auto images = mnist_samples(14);
    for (std::size_t t = 0; t < images.size(); ++t)
      (t < 10 ? po.calibration : m.samples).push_back(nn::normalize(m.network, images[t]));
    m.program = hybrid::lower(m.network, po);
    m.server = std::make_shared<const hybrid::ServerModel>(m.program, hybrid::he_parameters(m.program));
    return m;
  }();
  return m;
}

// The small residual network of the hybrid tests (dense layers, both polynomial depths).
const Model& residual() {
  static const Model m = [] {
    Model m;
    m.network = hybrid::test::residual_network(31);
    std::mt19937_64 rng(31);
    std::uniform_real_distribution<double> u(-1, 1);
    hybrid::ProgramOptions po;
    for (int t = 0; t < 53; ++t) {
      auto& x = (t < 50 ? po.calibration : m.samples).emplace_back(16);
      for (double& v : x) v = u(rng);
    }
    m.program = hybrid::lower(m.network, po);
    m.server = std::make_shared<const hybrid::ServerModel>(m.program, hybrid::he_parameters(m.program));
    return m;
  }();
  return m;
}

struct Server {
  std::unique_ptr<protocol::Host> host;
  explicit Server(const Model& m, hp::HandlerOptions ho = {}) {
    std::vector<std::unique_ptr<protocol::Handler>> handlers;
    ho.dataset = "mnist";
    handlers.push_back(std::make_unique<hp::Handler>(m.server, ho));
    protocol::HostOptions o;
    o.port = 0;
    o.log = [](const std::string& line) { std::printf("  server %s\n", line.c_str()); };
    host = std::make_unique<protocol::Host>(std::move(handlers), o);
  }
};

// One session: the server on a thread of its own, `client` here on the client's end.
void session(Server& server, const std::function<void(net::Channel&)>& client,
             net::ChannelStats* client_stats = nullptr, net::ChannelStats* server_stats = nullptr) {
  net::ChannelOptions o;
  o.idle_timeout = std::chrono::seconds(120);  // generous, but a stuck role still ends the test
  auto [c, s] = net::make_memory_pair(o);
  std::thread t([&, &ch = *s] { server.host->serve(ch); });
  try {
    client(*c);
  } catch (...) {
    c->close();
    t.join();
    throw;
  }
  c->close();
  t.join();
  if (client_stats) *client_stats = c->stats();
  if (server_stats) *server_stats = s->stats();
}

// Sends a request and returns the code of the server's refusal (0 if it was accepted).
template <class Reply>
std::uint16_t refusal(net::Channel& ch, const net::Frame& request) {
  ch.send(request);
  try {
    hp::decode<Reply>(ch.receive());
    return 0;
  } catch (const net::Error& e) {
    std::printf("  refused: %s\n", e.what());
    return e.code();
  }
}

std::uint16_t code(hp::ErrorCode c) { return static_cast<std::uint16_t>(c); }

long argmax(const std::vector<double>& v) { return std::max_element(v.begin(), v.end()) - v.begin(); }

// Every message round-trips; every strict prefix of a payload is refused as malformed; a
// frame of another type is unexpected; the peer's Error comes back with this protocol's name.
template <class T>
void expect_round_trip(const T& m) {
  const net::Frame f = hp::encode(m);
  EXPECT_EQ(f.type, static_cast<std::uint16_t>(T::kType));
  EXPECT_EQ(hp::decode<T>(f), m);
  for (std::size_t cut = 0; cut < f.payload.size(); cut += 1 + f.payload.size() / 64) {
    const net::Frame g{f.type,
                       Bytes(f.payload.begin(), f.payload.begin() + static_cast<std::ptrdiff_t>(cut))};
    try {
      hp::decode<T>(g);
      ADD_FAILURE() << "a payload cut at " << cut << " was accepted";
    } catch (const net::Error& e) {
      EXPECT_TRUE(e.is(protocol::ErrorCode::kBadMessage)) << e.what();
    }
  }
}

TEST(HybridMessages, RoundTripsAndRefusals) {
  hp::ServerInfo info;
  info.model = "m";
  info.dataset = "mnist";
  info.input = {1, 4, 4};
  info.mean = {0.5};
  info.std = {0.25};
  info.classes = {"zero", "one"};
  info.program = Bytes(300, 3);
  info.linear_parameters = Bytes(40, 1);
  info.beaver_parameters = Bytes(50, 2);
  info.max_materials = 8;
  info.max_material_age_s = 60;
  info.max_frame_bytes = 1 << 20;
  expect_round_trip(info);
  hp::MaterialId id{};
  id[0] = 1;
  id[15] = 0xff;
  expect_round_trip(hp::KeysAccepted{});
  expect_round_trip(hp::Preprocess{});
  expect_round_trip(hp::Preprocessing{id});
  expect_round_trip(hp::Online{id});
  expect_round_trip(hp::OnlineAccepted{id});
  EXPECT_EQ(hp::hex(id),
            "01000000000000000000000000000"
            "0ff");
  info.max_materials = 0;
  EXPECT_THROW(hp::decode<hp::ServerInfo>(hp::encode(info)), net::Error);
  hp::decode_open(hp::encode_open());
  EXPECT_THROW(hp::decode_open(Bytes{1}), net::Error);
  try {
    hp::decode<hp::OnlineAccepted>(hp::encode(hp::Preprocessing{id}));
    ADD_FAILURE() << "a Preprocessing frame was read as OnlineAccepted";
  } catch (const net::Error& e) {
    EXPECT_TRUE(e.is(protocol::ErrorCode::kUnexpectedMessage)) << e.what();
    EXPECT_NE(std::string(e.what()).find("expected OnlineAccepted, got Preprocessing"), std::string::npos)
        << e.what();
  }
  try {
    hp::decode<hp::OnlineAccepted>(protocol::encode(protocol::ErrorMessage{35, "spent"}));
    ADD_FAILURE() << "an Error frame was read as OnlineAccepted";
  } catch (const net::Error& e) {
    EXPECT_TRUE(e.is(hp::ErrorCode::kMaterialUsed));
    EXPECT_EQ(std::string(e.what()), "material already used: spent");
  }
  EXPECT_STREQ(hp::message_name(25), "Shares");
  EXPECT_STREQ(hp::message_name(1), "Hello");
}

TEST(HybridProtocol, ShippedCryptonetsInProcess) {
  const auto t0 = Clock::now();
  const Model& m = cryptonets();
  std::printf("  model lowered and prepared in %.2f s\n",
              std::chrono::duration<double>(Clock::now() - t0).count());
  Server server(m);
  net::ChannelStats cs, ss;
  session(
      server,
      [&](net::Channel& ch) {
        hp::Client client(ch, "hybrid_test");
        // The client learns the architecture, never a weight.
        EXPECT_TRUE(hybrid::is_public(client.program()));
        EXPECT_EQ(client.info().model, m.program.name);
        EXPECT_EQ(client.info().dataset, "mnist");
        EXPECT_EQ(client.info().classes, m.program.classes);
        EXPECT_EQ(client.info().max_materials, 8u);
        client.send_keys();
        const hp::MaterialId first = client.preprocess();
        const hp::MaterialId second = client.preprocess();
        EXPECT_NE(first, second);
        EXPECT_EQ(client.materials(), 2u);
        const auto& x0 = m.samples[0];
        const auto logits = client.infer(x0);  // consumes `first`
        EXPECT_EQ(argmax(logits), argmax(nn::evaluate(m.network, x0)));
        EXPECT_EQ(client.materials(), 1u);
        // The server refuses `first` a second time, and ids it never issued; the session
        // goes on with `second`.
        EXPECT_EQ(refusal<hp::OnlineAccepted>(ch, hp::encode(hp::Online{first})),
                  code(hp::ErrorCode::kMaterialUsed));
        hp::MaterialId forged = second;
        forged[15] ^= 1;
        EXPECT_EQ(refusal<hp::OnlineAccepted>(ch, hp::encode(hp::Online{forged})),
                  code(hp::ErrorCode::kUnknownMaterial));
        for (std::size_t i = 1; i < m.samples.size(); ++i) {
          if (client.materials() == 0) client.preprocess();
          const auto& x = m.samples[i];
          const auto got = client.infer(x);
          const auto plain = nn::evaluate(m.network, x);
          EXPECT_EQ(argmax(got), argmax(plain)) << "sample " << i;
          for (std::size_t j = 0; j < got.size(); ++j) EXPECT_NEAR(got[j], plain[j], 1.0) << "sample " << i;
        }
        const auto& st = client.stats();
        EXPECT_EQ(st.keys.runs, 1);
        EXPECT_EQ(st.preprocess.runs, static_cast<int>(m.samples.size()));
        EXPECT_EQ(st.online.runs, static_cast<int>(m.samples.size()));
        EXPECT_GT(st.preprocess.bytes_sent, 0u);
        EXPECT_GT(st.online.bytes_received, 0u);
        EXPECT_GT(st.online.rounds, st.online.runs);  // the acknowledgement, then the exchanges
        std::printf(
            "  per inference: preprocessing %.3f s, %.2f MB up, %.2f MB down; online %.3f s, %.1f kB up, "
            "%.1f kB down, %.1f rounds\n",
            st.preprocess.seconds / st.preprocess.runs, st.preprocess.bytes_sent / 1e6 / st.preprocess.runs,
            st.preprocess.bytes_received / 1e6 / st.preprocess.runs, st.online.seconds / st.online.runs,
            st.online.bytes_sent / 1e3 / st.online.runs, st.online.bytes_received / 1e3 / st.online.runs,
            static_cast<double>(st.online.rounds) / st.online.runs);
        client.bye();
      },
      &cs, &ss);
  EXPECT_EQ(cs.bytes_sent, ss.bytes_received);
  EXPECT_EQ(cs.bytes_received, ss.bytes_sent);
}

// Requests before the keys, malformed keys, a full store and expired materials: each
// refused by name, and the session goes on.
TEST(HybridProtocol, RefusalsKeepTheSessionInSync) {
  const Model& m = residual();
  hp::HandlerOptions ho;
  ho.max_materials = 2;
  Server server(m, ho);
  session(server, [&](net::Channel& ch) {
    hp::Client client(ch, "hybrid_test");
    EXPECT_EQ(refusal<hp::OnlineAccepted>(ch, hp::encode(hp::Online{})), code(hp::ErrorCode::kNoKeys));
    EXPECT_EQ(refusal<hp::Preprocessing>(ch, hp::encode(hp::Preprocess{})), code(hp::ErrorCode::kNoKeys));
    EXPECT_EQ(refusal<hp::KeysAccepted>(
                  ch, net::Frame{static_cast<std::uint16_t>(hybrid::Message::kKeys), Bytes(40, 7)}),
              code(hp::ErrorCode::kBadKeys));
    EXPECT_EQ(refusal<hp::KeysAccepted>(ch, hp::encode(hp::Preprocessing{})),
              static_cast<std::uint16_t>(protocol::ErrorCode::kUnexpectedMessage));
    client.send_keys();
    client.preprocess();
    client.preprocess();
    try {
      client.preprocess();
      ADD_FAILURE() << "a third material was stored over the limit of two";
    } catch (const net::Error& e) {
      EXPECT_TRUE(e.is(hp::ErrorCode::kMaterialLimit)) << e.what();
    }
    EXPECT_EQ(client.materials(), 2u);
    for (const auto& x : m.samples) {
      if (client.materials() == 0) client.preprocess();
      const auto got = client.infer(x);
      const auto fixed = hybrid::evaluate_fixed(m.program, x);
      ASSERT_EQ(got.size(), fixed.size());
      for (std::size_t j = 0; j < got.size(); ++j) EXPECT_NEAR(got[j], fixed[j], 0.05);
    }
    client.bye();
  });
}

// Sessions share the server's prepared model (read-only) and nothing else: two at once,
// each with its own keys and material store, both get the clear computation's logits.
TEST(HybridProtocol, ConcurrentSessionsShareTheModel) {
  const Model& m = residual();
  Server server(m);
  auto run = [&](std::size_t offset) {
    session(server, [&](net::Channel& ch) {
      hp::Client client(ch, "hybrid_test");
      client.send_keys();
      for (std::size_t i = 0; i < m.samples.size(); ++i) {
        client.preprocess();
        const auto& x = m.samples[(i + offset) % m.samples.size()];
        const auto got = client.infer(x);
        const auto fixed = hybrid::evaluate_fixed(m.program, x);
        ASSERT_EQ(got.size(), fixed.size());
        for (std::size_t j = 0; j < got.size(); ++j) EXPECT_NEAR(got[j], fixed[j], 0.05);
      }
      client.bye();
    });
  };
  std::thread other([&] { run(1); });
  run(0);
  other.join();
}

// Inside a multi-round part the stream cannot be resynchronised: a malformed preprocessing
// frame ends the session, reported as a bad frame naming the stage.
TEST(HybridProtocol, MalformedPreprocessingFrameEndsTheSession) {
  Server server(residual());
  session(server, [&](net::Channel& ch) {
    hp::Client client(ch, "hybrid_test");
    client.send_keys();
    ch.send(hp::encode(hp::Preprocess{}));
    hp::decode<hp::Preprocessing>(ch.receive());
    ch.send(static_cast<std::uint16_t>(hybrid::Message::kLinearRequest), Bytes(12, 1));
    const net::Frame f = ch.receive();
    ASSERT_EQ(f.type, static_cast<std::uint16_t>(protocol::HostMessage::kError));
    const auto e = protocol::decode_error(f);
    EXPECT_EQ(e.code, static_cast<std::uint16_t>(net::ErrorCode::kBadFrame));
    EXPECT_NE(e.text.find("preprocessing broke off"), std::string::npos) << e.text;
    EXPECT_THROW(ch.receive(), net::Error);  // closed
  });
}

TEST(HybridProtocol, ExpiredMaterialIsRefusedByName) {
  hp::HandlerOptions ho;
  ho.max_material_age_s = 0.5;
  Server server(residual(), ho);
  session(server, [&](net::Channel& ch) {
    hp::Client client(ch, "hybrid_test");
    client.send_keys();
    const hp::MaterialId id = client.preprocess();
    std::this_thread::sleep_for(std::chrono::milliseconds(800));
    EXPECT_EQ(refusal<hp::OnlineAccepted>(ch, hp::encode(hp::Online{id})),
              code(hp::ErrorCode::kMaterialExpired));
    // The client drops it too, rather than be refused.
    EXPECT_THROW(client.infer(residual().samples[0]), std::invalid_argument);
    client.preprocess();
    EXPECT_EQ(client.infer(residual().samples[0]).size(), 10u);
    client.bye();
  });
}

// A ServerInfo whose parameter sets are not those its public program implies is refused
// by the client before it makes or sends anything.
TEST(HybridProtocol, ClientRefusesParametersTheProgramDoesNotImply) {
  const Model& m = residual();
  net::ChannelOptions o;
  o.idle_timeout = std::chrono::seconds(60);
  auto [c, s] = net::make_memory_pair(o);
  std::thread t([&, &ch = *s] {
    const auto hello = protocol::decode_hello(ch.receive());
    EXPECT_EQ(hello.protocol, "hybrid");
    hp::ServerInfo info;
    info.model = "forged";
    info.input = m.program.input;
    info.program = hybrid::save_public_program(m.program);
    const auto params = hybrid::he_parameters(m.program);
    info.linear_parameters = bfv::save_parameters(params.beaver->params());  // swapped
    info.beaver_parameters = bfv::save_parameters(params.linear->params());
    info.max_materials = 1;
    info.max_material_age_s = 1;
    ch.send(hp::encode(info));
  });
  try {
    hp::Client client(*c, "hybrid_test");
    ADD_FAILURE() << "accepted parameters its program does not imply";
  } catch (const net::Error& e) {
    EXPECT_TRUE(e.is(protocol::ErrorCode::kBadMessage)) << e.what();
    EXPECT_NE(std::string(e.what()).find("BFV parameters"), std::string::npos) << e.what();
  }
  t.join();
}

}  // namespace
}  // namespace veil
