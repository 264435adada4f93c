// Frames, the host's and the non-interactive protocol's messages, and the channels (TCP
// over loopback and the in-memory pair, in-process).
#include <gtest/gtest.h>

#include <cmath>
#include <thread>

#include "veil/ckks/params.hpp"
#include "veil/ckks/serialize.hpp"
#include "veil/common/error.hpp"
#include "veil/common/file.hpp"
#include "veil/net/memory_channel.hpp"
#include "veil/net/tcp_channel.hpp"
#include "veil/protocol/hello.hpp"
#include "veil/protocol/ni/client.hpp"
#include "veil/protocol/ni/messages.hpp"

namespace veil {
namespace {

using net::ErrorCode;
using protocol::Bytes;
namespace ni = protocol::ni;

// The code of the net::Error fn throws (0: none), as the enum the test compares with.
template <class E = ErrorCode>
E code_of(const std::function<void()>& fn) {
  try {
    fn();
  } catch (const net::Error& e) {
    return static_cast<E>(e.code());
  }
  return E{0};
}
constexpr auto kBadMessage = protocol::ErrorCode::kBadMessage;
constexpr auto kUnexpected = protocol::ErrorCode::kUnexpectedMessage;

TEST(Frame, RoundTrip) {
  const net::Frame f{42, {1, 2, 3, 4, 5}};
  const auto bytes = net::encode_frame(f);
  ASSERT_EQ(bytes.size(), net::kFrameHeaderSize + 5);
  EXPECT_EQ(bytes[0], 'V');
  EXPECT_EQ(bytes[4], net::kFrameVersion);  // version, little-endian
  EXPECT_EQ(bytes[6], 42);
  EXPECT_EQ(bytes[8], 5);  // length
  const net::Frame g = net::parse_frame(bytes, 100);
  EXPECT_EQ(g.type, f.type);
  EXPECT_EQ(g.payload, f.payload);
}

TEST(Frame, Refusals) {
  auto bytes = net::encode_frame(net::Frame{1, Bytes(10, 7)});
  EXPECT_EQ(code_of([&] { net::parse_frame(bytes, 9); }), ErrorCode::kFrameTooLarge);
  EXPECT_EQ(code_of([&] { net::parse_frame(std::span(bytes).first(20), 100); }), ErrorCode::kBadFrame);
  EXPECT_EQ(code_of([&] { net::parse_frame(std::span(bytes).first(5), 100); }), ErrorCode::kBadFrame);
  auto v = bytes;
  v[4] = net::kFrameVersion + 1;
  EXPECT_EQ(code_of([&] { net::parse_frame(v, 100); }), ErrorCode::kBadVersion);
  v = bytes;
  v[0] = 'X';
  EXPECT_EQ(code_of([&] { net::parse_frame(v, 100); }), ErrorCode::kBadFrame);
  v = bytes;
  v.push_back(0);
  EXPECT_EQ(code_of([&] { net::parse_frame(v, 100); }), ErrorCode::kBadFrame);
}

template <class T, class Decode>
void expect_round_trip(const T& m, Decode decode) {
  const net::Frame f = encode(m);
  EXPECT_EQ(f.type, static_cast<std::uint16_t>(T::kType));
  EXPECT_EQ(decode(net::parse_frame(net::encode_frame(f), 1 << 20)), m);
  // Every strict prefix of the payload is refused, never read past.
  for (std::size_t cut = 0; cut < f.payload.size(); cut += 1 + f.payload.size() / 64) {
    net::Frame g{f.type, Bytes(f.payload.begin(), f.payload.begin() + cut)};
    EXPECT_EQ(code_of<protocol::ErrorCode>([&] { decode(g); }), kBadMessage) << "cut at " << cut;
  }
}

template <class T>
void expect_round_trip(const T& m) {
  expect_round_trip(m, [](const net::Frame& f) { return ni::decode<T>(f); });
}

ni::ServerInfo sample_info() {
  ni::ServerInfo s;
  s.model = "m";
  s.dataset = "mnist";
  s.input = {1, 4, 4};
  s.mean = {0.5};
  s.std = {0.25};
  s.classes = {"zero", "one"};
  s.parameters = ckks::save_parameters(ckks::CkksParameters::create(13, {40, 30, 30}, {40}, 30, 3));
  s.slots = 64;
  s.input_layout = nn::Layout::compact(s.input, 64);
  s.output_layout = nn::Layout::compact({2, 1, 1}, 64);
  s.rotation_steps = {1, 4};
  s.rotation_key_levels = {2, 1};
  s.input_ciphertexts = s.output_ciphertexts = 1;
  s.max_frame_bytes = 1 << 20;
  return s;
}

TEST(Messages, RoundTrips) {
  expect_round_trip(protocol::Hello{"ni", 3, "tester", ni::encode_open({nn::Mode::kThroughput})},
                    protocol::decode_hello);
  EXPECT_EQ(ni::decode_open(ni::encode_open({nn::Mode::kThroughput})).mode, nn::Mode::kThroughput);
  EXPECT_EQ(code_of<protocol::ErrorCode>([] { ni::decode_open({7}); }), kBadMessage);
  EXPECT_EQ(code_of<protocol::ErrorCode>([] { ni::decode_open({0, 0}); }), kBadMessage);
  expect_round_trip(sample_info());
  auto switched = sample_info();  // a ring switch's fields cross the wire intact
  switched.small_parameters = ckks::save_parameters(ckks::CkksParameters::create(12, {30, 30}, {40}, 30, 2));
  switched.switch_after = 3;
  switched.small_rotation_steps = {2};
  switched.small_rotation_key_levels = {1};
  switched.conjugation_key_level = 2;  // each ring's conjugation key level
  switched.small_conjugation_key_level = 1;
  expect_round_trip(switched);
  auto mux = sample_info();  // a multiplexed output layout crosses the wire intact
  mux.output_layout.mux_rows = 2;
  mux.output_layout.mux_cols = 2;
  mux.output_layout.mux_row_stride = 8;
  mux.output_layout.mux_col_stride = 1;
  mux.output_layout.channels_per_block = 4;
  expect_round_trip(mux);
  ni::KeyHash h{};
  h[0] = 1;
  h[31] = 9;
  expect_round_trip(ni::KeyQuery{h});
  expect_round_trip(ni::KeyStatus{true, h});
  expect_round_trip(ni::UploadKeys{Bytes(100, 1), Bytes(7, 2), Bytes(5, 3), {1234567, 3}, {89, 2}});
  expect_round_trip(ni::UploadKeys{Bytes(100, 1), {}, {}, {70, 1}, {}});
  expect_round_trip(ni::GaloisKeysPiece{Bytes(70, 4)});
  expect_round_trip(ni::Infer{3, {Bytes(5, 1), Bytes(), Bytes(9, 3)}});
  expect_round_trip(ni::Result{0.25, 1.5, {Bytes(4, 4)}});
  expect_round_trip(protocol::ErrorMessage{11, "later"}, protocol::decode_error);
  expect_round_trip(protocol::Bye{}, protocol::decode_bye);
}

// The server reads a key upload in place: views into the frames. (Its hash, taken piece by
// piece, is checked against the client's hash_keys end to end in tests/protocol/ni_test.)
TEST(Messages, KeyUploadIsReadInPlace) {
  const ni::UploadKeys keys{Bytes(100, 1), Bytes(7, 2), Bytes(5, 3), {1234567, 3}, {89, 2}};
  const net::Frame f = ni::encode(keys);
  const ni::UploadKeysView v = ni::decode_upload_keys_view(f);
  const std::uint8_t *begin = f.payload.data(), *end = begin + f.payload.size();
  for (const auto& blob : {v.relin, v.small_relin, v.ring_switch}) {
    EXPECT_GE(blob.data(), begin);
    EXPECT_LE(blob.data() + blob.size(), end);
  }
  EXPECT_TRUE(std::equal(v.small_relin.begin(), v.small_relin.end(), keys.small_relin.begin()));
  EXPECT_EQ(v.galois, keys.galois);
  EXPECT_EQ(v.small_galois, keys.small_galois);
  const net::Frame piece = ni::encode(ni::GaloisKeysPiece{Bytes{9, 8, 7}});
  const auto view = ni::decode_galois_keys_piece_view(piece);
  EXPECT_GE(view.data(), piece.payload.data());
  EXPECT_EQ(Bytes(view.begin(), view.end()), (Bytes{9, 8, 7}));
  // A piece is its own message type: an UploadKeys frame is not one.
  EXPECT_EQ(code_of<protocol::ErrorCode>([&] { ni::decode_galois_keys_piece_view(f); }), kUnexpected);
}

// Hashing blobs piece by piece (the server, as an upload arrives) equals hash_keys.
TEST(Messages, KeyHashInPiecesMatches) {
  const Bytes relin(100, 1), galois = {9, 8, 7, 6, 5, 4, 3}, ring(5, 3);
  ni::KeyHasher h;
  h.blob(relin);
  h.begin(galois.size());
  h.update(std::span(galois).first(3));
  h.update(std::span(galois).subspan(3));
  h.blob(ring);
  const ni::KeyHash streamed = h.finish();
  EXPECT_EQ(streamed, ni::hash_keys(relin, galois, ring));
  EXPECT_NE(streamed, ni::hash_keys(relin, galois));
}

TEST(Messages, WrongTypeAndPeerErrors) {
  const auto hello = protocol::encode(protocol::Hello{});
  EXPECT_EQ(code_of<protocol::ErrorCode>([&] { protocol::decode_bye(hello); }), kUnexpected);
  EXPECT_EQ(code_of<protocol::ErrorCode>([&] { ni::decode<ni::Result>(hello); }), kUnexpected);
  // A peer's Error arriving instead of the expected message is thrown with its code and,
  // for the protocol's own codes, their names.
  const auto err = protocol::encode(protocol::ErrorMessage{12, "bye now"});
  try {
    ni::decode<ni::Result>(err);
    FAIL();
  } catch (const net::Error& e) {
    EXPECT_TRUE(e.is(ErrorCode::kShuttingDown));
    EXPECT_EQ(e.message(), "bye now");
    EXPECT_STREQ(e.what(), "shutting down: bye now");
  }
  try {
    ni::decode<ni::KeyStatus>(protocol::encode(protocol::ErrorMessage{8, "wrong level"}));
    FAIL();
  } catch (const net::Error& e) {
    EXPECT_TRUE(e.is(ni::ErrorCode::kBadKeys));
    EXPECT_STREQ(e.what(), "bad keys: wrong level");
  }
  // Lying counts allocate nothing and fail.
  net::Frame f{static_cast<std::uint16_t>(ni::MessageType::kInfer), {1, 0, 0, 0, 0xff, 0xff, 0x0f, 0}};
  EXPECT_EQ(code_of<protocol::ErrorCode>([&] { ni::decode<ni::Infer>(f); }), kBadMessage);
  // Trailing bytes are refused.
  auto b = protocol::encode(protocol::Bye{});
  b.payload.push_back(0);
  EXPECT_EQ(code_of<protocol::ErrorCode>([&] { protocol::decode_bye(b); }), kBadMessage);
}

// An Error sent to a peer carries the problem, not where in this build's sources it was
// found: the " (file.cpp:line)" of every nested check is removed (local logs keep them).
TEST(Messages, ErrorsToPeersCarryNoSourceLocation) {
  std::string inner;
  try {
    VEIL_CHECK_IO(false, "key-switching key truncated: need 10 bytes, have 2");
  } catch (const std::exception& e) {
    inner = e.what();
  }
  EXPECT_NE(inner.find(".cpp:"), std::string::npos) << "the local message keeps its location: " << inner;
  const net::Error e = ni::error(ni::ErrorCode::kBadKeys, "keys do not load: " + inner + " (handler.cpp:12)");
  const auto sent = protocol::decode_error(protocol::encode_error(e));
  EXPECT_EQ(sent.code, static_cast<std::uint16_t>(ni::ErrorCode::kBadKeys));
  EXPECT_EQ(sent.text, "keys do not load: key-switching key truncated: need 10 bytes, have 2");
  // Text that merely looks like a location in the middle of a sentence stays.
  EXPECT_EQ(veil::without_location("see (the manual)"), "see (the manual)");
}

TEST(Messages, KeyHashSeparatesBlobs) {
  const auto a = ni::hash_keys(Bytes{1, 2}, Bytes{3});
  EXPECT_EQ(a, ni::hash_keys(Bytes{1, 2}, Bytes{3}));
  EXPECT_NE(a, ni::hash_keys(Bytes{1}, Bytes{2, 3}));
  EXPECT_EQ(ni::hex(a, 4).size(), 8u);
}

TEST(PublicPlan, ValidatesTheServersPlan) {
  auto info = sample_info();
  const auto m = ni::public_model(info);
  EXPECT_EQ(m.network.input, info.input);
  EXPECT_EQ(m.plan.packing.input, info.input_layout);
  EXPECT_EQ(m.plan.rotation_steps, info.rotation_steps);
  EXPECT_EQ(m.context->n(), std::size_t{1} << 13);
  auto bad = info;
  bad.input_layout.row_stride = 1000;  // element outside the ciphertext
  EXPECT_EQ(code_of<protocol::ErrorCode>([&] { ni::public_model(bad); }), kBadMessage);
  bad = info;
  bad.input_layout.row_stride = 0;  // every row in the same slots
  EXPECT_EQ(code_of<protocol::ErrorCode>([&] { ni::public_model(bad); }), kBadMessage);
  bad = info;
  bad.rotation_steps[0] = 64;
  EXPECT_EQ(code_of<protocol::ErrorCode>([&] { ni::public_model(bad); }), kBadMessage);
  bad = info;
  bad.classes.push_back("two");
  EXPECT_EQ(code_of<protocol::ErrorCode>([&] { ni::public_model(bad); }), kBadMessage);
  bad = info;  // the client refuses parameters below 128-bit security
  bad.parameters = ckks::save_parameters(ckks::CkksParameters::create(12, {60, 60, 60}, {60}, 40, 3, true));
  EXPECT_EQ(code_of<protocol::ErrorCode>([&] { ni::public_model(bad); }), kBadMessage);
}

// A listener on a free port, serving one connection with `serve` on its own thread.
struct Loopback {
  net::Listener listener{"127.0.0.1", 0};
  std::thread thread;
  explicit Loopback(std::function<void(net::Channel&)> serve, net::ChannelOptions o = {}) {
    thread = std::thread([this, serve, o] {
      listener.run(
          [&](std::unique_ptr<net::Channel> ch) {
            listener.stop();
            serve(*ch);
          },
          o);
    });
  }
  ~Loopback() { thread.join(); }
};

TEST(Channel, FramesCountersAndRounds) {
  Loopback server([](net::Channel& ch) {
    for (int i = 0; i < 3; ++i) {
      net::Frame f = ch.receive();
      f.payload.push_back(static_cast<std::uint8_t>(i));
      ch.send(f);
    }
  });
  auto c = net::TcpChannel::connect("127.0.0.1", server.listener.port(), {});
  std::uint64_t sent = 0;
  for (int i = 0; i < 3; ++i) {
    const Bytes payload(1000 * i, 5);
    c->send(7, payload);
    sent += net::kFrameHeaderSize + payload.size();
    const net::Frame f = c->receive();
    EXPECT_EQ(f.type, 7);
    ASSERT_EQ(f.payload.size(), payload.size() + 1);
    EXPECT_EQ(f.payload.back(), i);
  }
  EXPECT_EQ(c->stats().bytes_sent, sent);
  EXPECT_EQ(c->stats().bytes_received, sent + 3);
  EXPECT_EQ(c->stats().frames_sent, 3u);
  EXPECT_EQ(c->stats().rounds, 3u);
}

TEST(Channel, TimeoutsAndLimits) {
  net::ChannelOptions o;
  o.io_timeout = std::chrono::milliseconds(200);
  o.idle_timeout = std::chrono::milliseconds(300);
  o.max_frame_bytes = 100;
  std::vector<ErrorCode> seen;
  {
    Loopback server(
        [&](net::Channel& ch) {
          for (int i = 0; i < 3; ++i) seen.push_back(code_of([&] { ch.receive(); }));
        },
        o);
    auto c = net::TcpChannel::connect("127.0.0.1", server.listener.port(), {});
    std::this_thread::sleep_for(std::chrono::milliseconds(500));  // past the idle timeout
    c->send(1, {});
    c->send(1, Bytes(200, 0));  // above the receiver's limit
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  ASSERT_EQ(seen.size(), 3u);
  EXPECT_EQ(seen[0], ErrorCode::kTimeout);
  EXPECT_EQ(seen[1], ErrorCode{0});
  EXPECT_EQ(seen[2], ErrorCode::kFrameTooLarge);
}

TEST(Channel, InterruptStopsAnIdleWait) {
  std::mutex m;
  std::condition_variable cv;
  net::Channel* server_side = nullptr;
  bool returned = false;
  ErrorCode got{0};
  {
    Loopback server([&](net::Channel& ch) {
      {
        std::lock_guard lk(m);
        server_side = &ch;
      }
      cv.notify_all();
      const ErrorCode c = code_of([&] { ch.receive(); });
      std::lock_guard lk(m);
      got = c;
      returned = true;
      cv.notify_all();
    });
    auto c = net::TcpChannel::connect("127.0.0.1", server.listener.port(), {});
    std::unique_lock lk(m);
    cv.wait(lk, [&] { return server_side != nullptr; });
    server_side->interrupt();
    cv.wait(lk, [&] { return returned; });  // keep the client connected until then
  }
  EXPECT_EQ(got, ErrorCode::kShuttingDown);
}

TEST(Channel, ConnectFailsClearly) {
  std::uint16_t port;
  {
    net::Listener l("127.0.0.1", 0);
    port = l.port();
  }
  EXPECT_EQ(code_of([&] { net::TcpChannel::connect("127.0.0.1", port, {}); }), ErrorCode::kIo);
  EXPECT_EQ(code_of([] { ni::parse_address("nohost"); }), ErrorCode::kIo);
}

}  // namespace
}  // namespace veil
