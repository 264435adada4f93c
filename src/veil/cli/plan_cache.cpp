#include "veil/cli/plan_cache.hpp"

#include <sodium.h>
#include <unistd.h>

#include <array>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <optional>
#include <random>
#include <sstream>

#include "veil/common/error.hpp"
#include "veil/common/file.hpp"
#include "veil/math/cpu.hpp"

namespace veil::cli {

namespace fs = std::filesystem;

namespace {

std::optional<std::string> g_dir;  // set by --plan-cache

// Entry: magic, format, the key it was made for, the choice, and a BLAKE2b-256 of all
// before it (a torn or altered file is told apart from a choice that no longer fits). A
// latency plan's entry starts "VEILPLAN", a hybrid program's "VEILHPRG".
using Magic = std::array<char, 8>;
constexpr Magic kPlanMagic = {'V', 'E', 'I', 'L', 'P', 'L', 'A', 'N'};
constexpr Magic kProgramMagic = {'V', 'E', 'I', 'L', 'H', 'P', 'R', 'G'};
constexpr std::uint32_t kFormat = 1;
constexpr std::size_t kHash = 32;
using Hash = std::array<std::uint8_t, kHash>;

class Hasher {
 public:
  Hasher() { crypto_generichash_init(&state_, nullptr, 0, kHash); }
  // Length-prefixed, so that adjacent fields cannot run into each other.
  void add(std::span<const std::uint8_t> bytes) {
    const std::uint64_t n = bytes.size();
    crypto_generichash_update(&state_, reinterpret_cast<const unsigned char*>(&n), sizeof n);
    crypto_generichash_update(&state_, bytes.data(), bytes.size());
  }
  void add(const std::string& s) { add({reinterpret_cast<const std::uint8_t*>(s.data()), s.size()}); }
  Hash finish() {
    Hash h;
    crypto_generichash_final(&state_, h.data(), h.size());
    return h;
  }

 private:
  crypto_generichash_state state_;
};

Hash hash_of(std::span<const std::uint8_t> bytes) {
  Hasher h;
  h.add(bytes);
  return h.finish();
}

// This binary, once per process: a rebuilt veil may search differently.
const Hash& binary_hash() {
  static const Hash h = [] { return hash_of(read_file("/proc/self/exe")); }();
  return h;
}

// The part of every entry's name that names the model: the kind of entry, this binary,
// the model file's bytes and the --approximate specs.
Hasher model_hasher(const std::string& domain, const std::string& model_path,
                    const std::vector<std::string>& approximations) {
  Hasher h;
  h.add(domain);
  h.add(binary_hash());
  h.add(read_file(model_path));
  for (const auto& a : approximations) h.add(a);
  return h;
}

Hash entry_key(const std::string& model_path, const std::vector<std::string>& approximations,
               const nn::PlanOptions& o) {
  Hasher h = model_hasher("veil plan cache", model_path, approximations);
  std::ostringstream opts;
  opts.precision(17);
  opts << static_cast<int>(o.mode) << ' ' << o.target_scale_bits << ' ' << o.min_scale_bits << ' '
       << o.headroom_bits << ' ' << o.min_precision_bits << ' ' << o.log_n << ' ' << o.allow_insecure << ' '
       << o.ring_switch << ' ' << o.ring_switch_after << ' ' << static_cast<int>(o.level_pricing) << " simd "
       << static_cast<int>(math::simd_level());
  h.add(opts.str());
  return h.finish();
}

// Everything hybrid::lower depends on: the binary, the model, the options, and the
// calibration inputs' values (a data set replaced under the same path names a new entry).
Hash program_key(const std::string& model_path, const std::vector<std::string>& approximations,
                 const hybrid::ProgramOptions& o) {
  Hasher h = model_hasher("veil hybrid program cache", model_path, approximations);
  std::ostringstream opts;
  opts.precision(17);
  opts << o.prime << ' ' << static_cast<int>(o.ring) << ' ' << o.prime2 << ' ' << o.value_precision << ' '
       << o.uniform_frac_bits << ' ' << o.sigma << ' ' << o.margin << ' ' << o.max_weight_bits << ' '
       << o.merge << ' ' << o.calibration.size();
  h.add(opts.str());
  for (const auto& x : o.calibration)
    h.add({reinterpret_cast<const std::uint8_t*>(x.data()), x.size() * sizeof(double)});
  return h.finish();
}

// The choice an entry holds, in bytes; throws std::runtime_error saying what is wrong.
Bytes read_entry(const Bytes& bytes, const Magic& kind, const Hash& key) {
  VEIL_CHECK_IO(bytes.size() >= kind.size() + 4 + 2 * kHash, "too short (" << bytes.size() << " bytes)");
  const std::span<const std::uint8_t> body(bytes.data(), bytes.size() - kHash);
  Hash sum;
  std::copy(bytes.end() - kHash, bytes.end(), sum.begin());
  VEIL_CHECK_IO(hash_of(body) == sum, "checksum mismatch (a damaged or altered file)");
  ByteReader r(body);
  Magic magic;
  r.raw(magic.data(), magic.size());
  VEIL_CHECK_IO(magic == kind, "not a veil plan-cache entry of this kind");
  const std::uint32_t format = r.u32();
  VEIL_CHECK_IO(format == kFormat, "format " << format << ", this veil reads " << kFormat);
  Hash made_for;
  r.raw(made_for.data(), made_for.size());
  VEIL_CHECK_IO(made_for == key, "made for another model or other options");
  const auto rest = r.view(r.remaining());
  return Bytes(rest.begin(), rest.end());
}

// Written to a temporary file and renamed, so that a reader never sees half an entry and
// two servers starting at once both leave a whole one.
void write_entry(const fs::path& path, const Magic& kind, const Hash& key,
                 std::span<const std::uint8_t> choice) {
  ByteWriter w;
  w.raw(kind.data(), kind.size());
  w.u32(kFormat);
  w.raw(key.data(), key.size());
  w.bytes(choice);
  const Hash sum = hash_of(w.buffer());
  w.raw(sum.data(), sum.size());
  const Bytes bytes = w.take();
  fs::create_directories(path.parent_path());
  std::random_device rd;
  const fs::path tmp = path.string() + ".tmp" + std::to_string(getpid()) + "-" + std::to_string(rd());
  write_file(tmp.string(), bytes);
  std::error_code ec;
  fs::rename(tmp, path, ec);
  if (ec) {
    fs::remove(tmp, ec);
    VEIL_CHECK_IO(false, "cannot write '" << path.string() << "'");
  }
}

// Entries unused for kUnusedDays go: each veil build names its own (a rebuilt binary
// plans again), so a directory would otherwise keep every old build's plans.
constexpr int kUnusedDays = 30;
void prune(const fs::path& dir) {
  std::error_code ec;
  const auto cutoff = fs::file_time_type::clock::now() - std::chrono::hours(24 * kUnusedDays);
  for (fs::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
    const fs::path& p = it->path();
    if (p.extension() != ".plan") continue;
    std::error_code time_ec;
    const auto t = fs::last_write_time(p, time_ec);
    if (!time_ec && t < cutoff) fs::remove(p, time_ec);
  }
}

// What `rebuild` makes of the entry for `key` in `dir` when there is a usable one (*kept
// set), else what `make` returns, whose choice (`save`) is then written for the next start.
template <class T, class Rebuild, class Make, class Save>
T kept_or_made(const std::string& dir, const Magic& kind, const Hash& key, Rebuild rebuild, Make make,
               Save save, bool* kept) {
  const fs::path path = fs::path(dir) / (hex(key) + ".plan");
  std::error_code ec;
  if (fs::exists(path, ec)) {
    try {
      T out = rebuild(read_entry(read_file(path.string()), kind, key));
      *kept = true;
      fs::last_write_time(path, fs::file_time_type::clock::now(), ec);  // in use (see prune)
      return out;
    } catch (const std::exception& e) {
      std::fprintf(stderr, "veil: note: ignoring the kept plan '%s' (%s); planning afresh\n",
                   path.string().c_str(), e.what());
    }
  }
  T out = make();
  try {
    write_entry(path, kind, key, save(out));
    prune(dir);
  } catch (const std::exception& e) {
    static bool told = false;
    if (!told)
      std::fprintf(stderr,
                   "veil: note: the plan could not be kept for the next start (%s; --plan-cache DIR or "
                   "VEIL_PLAN_CACHE chooses the directory, off turns this off)\n",
                   e.what());
    told = true;
  }
  return out;
}

}  // namespace

void set_plan_cache_dir(const std::string& dir) { g_dir = dir; }

std::string plan_cache_dir() {
  std::string dir;
  if (g_dir) {
    dir = *g_dir;
  } else if (const char* env = std::getenv("VEIL_PLAN_CACHE")) {
    dir = env;
  } else if (const char* xdg = std::getenv("XDG_CACHE_HOME"); xdg && *xdg) {
    dir = (fs::path(xdg) / "veil" / "plans").string();
  } else if (const char* home = std::getenv("HOME"); home && *home) {
    dir = (fs::path(home) / ".cache" / "veil" / "plans").string();
  }
  return dir == "off" ? std::string() : dir;
}

CachedPlan plan_with_cache(const std::string& model_path, const std::vector<std::string>& approximations,
                           const nn::Network& net, const nn::PlanOptions& options) {
  CachedPlan out;
  const std::string dir = plan_cache_dir();
  if (dir.empty() || !nn::packing_mode(options.mode).has_layouts()) {
    out.plan = nn::make_plan(net, options);
    return out;
  }
  out.plan = kept_or_made<nn::Plan>(
      dir, kPlanMagic, entry_key(model_path, approximations, options),
      [&](const Bytes& b) { return nn::plan_from_choice(net, options, nn::load_plan_choice(b)); },
      [&] { return nn::make_plan(net, options); },
      [](const nn::Plan& plan) { return nn::save_plan_choice(nn::plan_choice(plan)); }, &out.kept);
  return out;
}

CachedProgram program_with_cache(const std::string& model_path,
                                 const std::vector<std::string>& approximations, const nn::Network& net,
                                 const hybrid::ProgramOptions& options) {
  CachedProgram out;
  const std::string dir = plan_cache_dir();
  if (dir.empty()) {
    out.program = hybrid::lower(net, options);
    return out;
  }
  hybrid::ProgramChoice choice;
  out.program = kept_or_made<hybrid::Program>(
      dir, kProgramMagic, program_key(model_path, approximations, options),
      [&](const Bytes& b) { return hybrid::lower_from_choice(net, options, hybrid::load_program_choice(b)); },
      [&] { return hybrid::lower(net, options, &choice); },
      [&](const hybrid::Program&) { return hybrid::save_program_choice(choice); }, &out.kept);
  return out;
}

}  // namespace veil::cli
