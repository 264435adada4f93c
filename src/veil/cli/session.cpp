#include "veil/cli/session.hpp"
#include "veil/eval/records.hpp"

#include <sys/stat.h>
#include <cctype>
#include <cmath>
#include <cstdio>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <numeric>
#include <sstream>

#include "veil/ckks/serialize.hpp"
#include "veil/cli/plan_cache.hpp"
#include "veil/common/bytes.hpp"
#include "veil/common/error.hpp"
#include "veil/common/file.hpp"
#include "veil/common/memory.hpp"
#include "veil/data/dataset.hpp"
#include "veil/data/image.hpp"
#include "veil/nn/onnx/import.hpp"
#include "veil/nn/passes.hpp"
#include "veil/nn/plain_eval.hpp"

namespace veil::cli {

namespace fs = std::filesystem;

Model load_model(const ModelOptions& o) {
  nn::ImportOptions io;
  for (const auto& a : o.approximate) io.approximations.push_back(nn::parse_approx_spec(a));
  Model m;
  m.graph = nn::load_onnx(o.path, io);
  m.network = nn::lower(m.graph);
  cli::CachedPlan planned = plan_with_cache(o.path, o.approximate, m.network, o.plan);
  m.plan = std::move(planned.plan);
  m.plan_kept = planned.kept;
  m.context = ckks::CkksContext::create(m.plan.params);
  return m;
}

namespace {
double g_cache_gib = -1;  // < 0: not given on the command line
}  // namespace

void set_plaintext_cache_gib(double gib) { g_cache_gib = gib; }

namespace {
// --plaintext-cache-gib, else VEIL_PLAINTEXT_CACHE_GIB, else `fallback`.
std::size_t cache_bytes_or(std::size_t fallback) {
  double gib = g_cache_gib;
  if (gib < 0) {
    const char* env = std::getenv("VEIL_PLAINTEXT_CACHE_GIB");
    if (!env) return fallback;
    char* end = nullptr;
    gib = std::strtod(env, &end);
    VEIL_REQUIRE(end != env && *end == '\0' && gib >= 0 && gib <= 1 << 20,
                 "VEIL_PLAINTEXT_CACHE_GIB must be a number of GiB, got '" << env << "'");
  }
  // 0 GiB means "cache nothing"; EncryptedNetwork treats a 1-byte budget that way.
  return std::max<std::size_t>(1, static_cast<std::size_t>(gib * static_cast<double>(std::size_t{1} << 30)));
}
}  // namespace

std::size_t plaintext_cache_bytes() { return cache_bytes_or(nn::default_plaintext_cache_bytes()); }

std::size_t hybrid_cache_bytes() { return cache_bytes_or(memory_budget(2.0 / 3)); }

namespace {
// "; all ready needs --plaintext-cache-gib 3.6", rounded up, so that the figure given back
// does keep them all.
std::string all_ready_hint(std::size_t all_bytes) {
  const double gib = std::ceil(static_cast<double>(all_bytes) / static_cast<double>(1 << 30) * 10) / 10;
  char buf[96];
  std::snprintf(buf, sizeof buf, "; all ready needs --plaintext-cache-gib %.1f", gib);
  return buf;
}
}  // namespace

std::string describe_weight_forms(const nn::WeightForms& f) {
  const std::size_t kept = f.ntt_bytes + f.coefficient_bytes;
  std::string s = human_bytes(kept);
  if (f.all_ntt_bytes == 0) return s;  // no diagonals (throughput mode)
  if (f.coefficient_bytes == 0 && f.encoded_per_use == 0) return s + ", all ready (NTT form)";
  s += ": " + human_bytes(f.ntt_bytes) + " ready";
  if (f.coefficient_bytes > 0)
    s += ", " + human_bytes(f.coefficient_bytes) + " as coefficients (an NTT per limb at each use)";
  if (f.encoded_per_use > 0)
    s += ", " + std::to_string(f.encoded_per_use) + " stage(s) encoded afresh at each use";
  return s + all_ready_hint(f.all_ntt_bytes);
}

std::string describe_hybrid_weights(const hybrid::ServerModel& model) {
  std::string s = human_bytes(model.memory_bytes());
  if (model.blocks_per_use() == 0) return s + ", all ready (NTT form)";
  return s + ": " + std::to_string(model.blocks_per_use()) +
         " kernel blocks beyond the budget made at each use (an NTT per prime)" +
         all_ready_hint(model.all_ready_bytes());
}

Input load_input(const nn::Network& net, const std::string& path, std::size_t index) {
  VEIL_CHECK_IO(fs::exists(path), "input file '" << path << "' does not exist");
  std::vector<std::uint8_t> head(16, 0);
  {
    std::FILE* f = std::fopen(path.c_str(), "rb");
    VEIL_CHECK_IO(f, "cannot open input '" << path << "'");
    head.resize(std::fread(head.data(), 1, head.size(), f));
    std::fclose(f);
  }
  Input in;
  std::vector<std::uint8_t> pixels;
  // A file named like an image must be one: falling through to the data-set readers
  // would report a truncated or text ".png" as "not a data set file".
  std::string ext = fs::path(path).extension().string();
  for (auto& c : ext) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  const bool image_name = ext == ".png" || ext == ".jpg" || ext == ".jpeg" || ext == ".ppm";
  VEIL_CHECK_IO(!image_name || data::detect_image_format(head) != data::ImageFormat::kUnknown,
                "input '" << path << "' is not an image: its contents are not PNG, JPEG or PPM"
                          << (fs::file_size(path) == 0 ? " (the file is empty)" : ""));
  if (data::detect_image_format(head) != data::ImageFormat::kUnknown) {
    const data::Image img =
        data::to_model_input(data::load_image(path), net.input.c, net.input.h, net.input.w);
    pixels = img.pixels;
    in.label = fs::path(path).filename().string();
  } else {
    data::LoadOptions lo;
    lo.max_count = index + 1;
    const data::Dataset ds = data::load_dataset(path, net.dataset, lo);
    VEIL_REQUIRE(index < ds.size(), "'" << path << "' holds " << ds.size() << " records; --index " << index
                                        << " is out of range");
    VEIL_REQUIRE(ds.channels == net.input.c && ds.height == net.input.h && ds.width == net.input.w,
                 "'" << path << "' holds " << ds.channels << "x" << ds.height << "x" << ds.width
                     << " images; the model takes " << net.input.c << "x" << net.input.h << "x"
                     << net.input.w);
    const auto px = ds.pixels(index);
    pixels.assign(px.begin(), px.end());
    in.true_class = ds.labels[index];
    in.label = fs::path(path).filename().string() + "#" + std::to_string(index);
  }
  in.values = nn::normalize(net, pixels);
  return in;
}

namespace {

void write_private_file(const std::string& path, const veil::Bytes& bytes) {
  // Create with owner-only permissions before any secret byte is written.
  const mode_t old = ::umask(077);
  try {
    veil::write_file(path, bytes);
  } catch (...) {
    ::umask(old);
    throw;
  }
  ::umask(old);
  fs::permissions(path, fs::perms::owner_read | fs::perms::owner_write, fs::perm_options::replace);
}

std::string in_dir(const std::string& dir, const char* name) { return (fs::path(dir) / name).string(); }

void check_params(const std::string& dir, const Model& m) {
  const auto p =
      ckks::load_parameters(veil::read_file(in_dir(dir, "params.bin")), m.plan.params.allow_insecure);
  VEIL_REQUIRE(p.q == m.plan.params.q && p.p == m.plan.params.p && p.log_n == m.plan.params.log_n,
               "keys in '" << dir
                           << "' were made for other parameters than this model's plan; run veil keygen "
                              "again with the same --model and options");
}

}  // namespace

void save_keys(const std::string& dir, const Model& m, const rlwe::SecretKey& sk,
               const nn::EvaluationKeys& keys, std::uint64_t* evaluation_key_bytes) {
  fs::create_directories(dir);
  const auto& ctx = *m.context;
  veil::write_file(in_dir(dir, "params.bin"), ckks::save_parameters(m.plan.params));
  write_private_file(in_dir(dir, "secret.key"), rlwe::save_secret_key(ctx, sk));
  const auto relin = rlwe::save_relin_keys(ctx, keys.relin, true);
  const auto galois = rlwe::save_galois_keys(ctx, keys.galois, true);
  veil::write_file(in_dir(dir, "relin.key"), relin);
  veil::write_file(in_dir(dir, "galois.key"), galois);
  // The smaller ring's keys (a plan with a ring switch); none left from an earlier plan.
  const Bytes small = nn::save_small_ring_keys(m.plan, keys);
  if (small.empty())
    fs::remove(in_dir(dir, "ring-switch.key"));
  else
    veil::write_file(in_dir(dir, "ring-switch.key"), small);
  if (evaluation_key_bytes) *evaluation_key_bytes = relin.size() + galois.size() + small.size();
}

rlwe::SecretKey load_secret_key(const std::string& dir, const Model& m) {
  check_params(dir, m);
  return rlwe::load_secret_key(*m.context, veil::read_file(in_dir(dir, "secret.key")));
}

nn::EvaluationKeys load_evaluation_keys(const std::string& dir, const Model& m) {
  check_params(dir, m);
  nn::EvaluationKeys k;
  k.relin = rlwe::load_relin_keys(*m.context, veil::read_file(in_dir(dir, "relin.key")));
  k.galois = rlwe::load_galois_keys(*m.context, veil::read_file(in_dir(dir, "galois.key")));
  for (int step : m.plan.rotation_steps)
    VEIL_REQUIRE(k.galois.has(m.context->galois_element(step)),
                 "galois.key in '" << dir << "' lacks the rotation by " << step << " this model needs");
  VEIL_REQUIRE(m.plan.conjugation_key_level < 0 || k.galois.has(m.context->conjugation_element()),
               "galois.key in '" << dir << "' lacks the conjugation key this model needs; run veil keygen "
                                 << "again with the same --model and options");
  if (m.plan.small_params) {
    const std::string path = in_dir(dir, "ring-switch.key");
    VEIL_REQUIRE(fs::exists(path), "this plan switches to a smaller ring after stage "
                                       << m.plan.switch_after() + 1 << " and needs " << path
                                       << "; run veil keygen with the same --model and options");
    nn::load_small_ring_keys(m.plan, veil::read_file(path), k);
  }
  return k;
}

namespace {
constexpr char kBundleMagic[8] = {'V', 'E', 'I', 'L', 'C', 'T', 'S', '1'};
constexpr std::uint32_t kMaxBundleCount = 1u << 20;
}  // namespace

std::uint64_t save_ciphertexts(const std::string& path, const ckks::CkksContext& ctx,
                               const std::vector<ckks::Ciphertext>& cts) {
  ByteWriter w;
  w.raw(kBundleMagic, sizeof kBundleMagic);
  w.u32(static_cast<std::uint32_t>(cts.size()));
  for (const auto& c : cts) {
    const auto b = ckks::save_ciphertext(ctx, c, true);
    w.u64(b.size());
    w.bytes(b);
  }
  const std::uint64_t size = w.size();
  veil::write_file(path, w.take());
  return size;
}

std::vector<ckks::Ciphertext> load_ciphertexts(const std::string& path, const ckks::CkksContext& ctx) {
  const auto bytes = veil::read_file(path);
  ByteReader r(bytes);
  char magic[8];
  VEIL_CHECK_IO(bytes.size() >= 12, "'" << path << "' is too short to be a veil ciphertext file");
  r.raw(magic, sizeof magic);
  VEIL_CHECK_IO(std::memcmp(magic, kBundleMagic, sizeof magic) == 0,
                "'" << path << "' is not a veil ciphertext file (bad magic)");
  const std::uint32_t count = r.u32();
  VEIL_CHECK_IO(count > 0 && count <= kMaxBundleCount, "'" << path << "' claims " << count << " ciphertexts");
  std::vector<ckks::Ciphertext> cts;
  for (std::uint32_t i = 0; i < count; ++i) {
    VEIL_CHECK_IO(r.remaining() >= 8, "'" << path << "' is truncated (ciphertext " << i << ")");
    const std::uint64_t len = r.u64();
    VEIL_CHECK_IO(len <= r.remaining(), "'" << path << "' is truncated (ciphertext " << i << ")");
    cts.push_back(ckks::load_ciphertext(ctx, r.view(len)));
  }
  VEIL_CHECK_IO(r.remaining() == 0, "'" << path << "' has trailing bytes");
  return cts;
}

std::uint64_t wire_bytes(const ckks::CkksContext& ctx, const std::vector<ckks::Ciphertext>& cts) {
  std::uint64_t b = 0;
  for (const auto& c : cts) b += ckks::save_ciphertext(ctx, c, true).size();
  return b;
}

std::vector<int> top_k(const std::vector<double>& logits, int k) {
  std::vector<int> idx(logits.size());
  std::iota(idx.begin(), idx.end(), 0);
  k = std::min<int>(k, static_cast<int>(idx.size()));
  std::partial_sort(idx.begin(), idx.begin() + k, idx.end(),
                    [&](int a, int b) { return logits[a] > logits[b]; });
  idx.resize(k);
  return idx;
}

int argmax(const std::vector<double>& v) { return eval::argmax(v); }

}  // namespace veil::cli
