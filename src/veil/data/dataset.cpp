#include "veil/data/dataset.hpp"

#include <algorithm>
#include <cctype>
#include <cstdlib>
#include <cstring>
#include <filesystem>

#include "veil/common/error.hpp"
#include "veil/data/file_bytes.hpp"
#include "veil/data/idx.hpp"

// VEIL_CHECK_IO(false, ...) as a function's last statement, telling the compiler that
// control does not come back (it cannot see through the macro's condition at -O0).
#define VEIL_DATA_FAIL(...)            \
  do {                                 \
    VEIL_CHECK_IO(false, __VA_ARGS__); \
    __builtin_unreachable();           \
  } while (0)

namespace veil::data {

namespace fs = std::filesystem;

namespace {

constexpr std::size_t kCifarPixels = 3 * 32 * 32;
constexpr std::size_t kCifarRecord = 1 + kCifarPixels;

enum class FileKind { kIdxImages, kIdxLabels, kCifar };

struct Part {
  std::string path;
  std::vector<std::uint8_t> bytes;
  FileKind kind = FileKind::kCifar;
};

std::string lower(std::string_view s) {
  std::string out(s);
  for (auto& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

// A header that promises exactly the bytes the file holds; anything else is not trusted
// to be IDX (a CIFAR file can start with 00 00 08 by chance).
bool consistent_idx(std::span<const std::uint8_t> b) {
  if (!looks_like_idx(b) || b[2] != 0x08) return false;
  const std::size_t header = 4 + 4 * std::size_t{b[3]};
  if (b.size() < header) return false;
  std::uint64_t total = 1;
  for (int d = 0; d < b[3]; ++d) {
    const std::uint8_t* p = b.data() + 4 + 4 * d;
    total *= (std::uint64_t{p[0]} << 24) | (std::uint64_t{p[1]} << 16) | (std::uint64_t{p[2]} << 8) | p[3];
    if (total > (std::uint64_t{1} << 40)) return false;
  }
  return total == b.size() - header;
}

Part read_part(const std::string& path) {
  VEIL_CHECK_IO(fs::is_regular_file(path), "data file " << path << " does not exist");
  Part p;
  p.path = path;
  p.bytes = read_file_bytes(path);
  const auto& b = p.bytes;
  if (consistent_idx(b) && (b[3] == 3 || b[3] == 1)) {
    p.kind = b[3] == 3 ? FileKind::kIdxImages : FileKind::kIdxLabels;
  } else if (!b.empty() && b.size() % kCifarRecord == 0) {
    p.kind = FileKind::kCifar;
  } else if (looks_like_idx(b)) {
    IdxArray a = parse_idx(b, path);  // throws with the precise problem
    VEIL_CHECK_IO(false, path << ": IDX file with " << a.dims.size()
                              << " dimensions is neither images (3) nor labels (1)");
  } else {
    VEIL_CHECK_IO(false, path << ": not a data set file: neither IDX (magic 0x0000080N) nor "
                                 "CIFAR-10 binary ("
                              << b.size() << " bytes is not a multiple of the " << kCifarRecord
                              << "-byte record; truncated?)");
  }
  return p;
}

void check_label(int label, std::size_t record, const std::string& path, int num_classes) {
  VEIL_CHECK_IO(label < num_classes, path << ": label " << label << " of record " << record
                                          << " is out of range for " << num_classes << " classes");
}

// False once max_count records are kept.
bool room_for_more(const Dataset& ds, const LoadOptions& o) {
  return o.max_count == 0 || ds.size() < o.max_count;
}

void load_idx(const Part& images, const Part& labels, const LoadOptions& o, Dataset& ds) {
  const IdxArray img = parse_idx(images.bytes, images.path);
  const IdxArray lab = parse_idx(labels.bytes, labels.path);
  const std::uint32_t n = img.dims[0], h = img.dims[1], w = img.dims[2];
  VEIL_CHECK_IO(h >= 1 && w >= 1 && h <= kMaxImageSide && w <= kMaxImageSide,
                images.path << ": image size " << h << "x" << w << " outside 1.." << kMaxImageSide);
  VEIL_CHECK_IO(lab.dims[0] == n, "images file " << images.path << " holds " << n
                                                 << " images but labels file " << labels.path << " holds "
                                                 << lab.dims[0] << " labels");
  for (std::uint32_t i = 0; i < n; ++i) check_label(lab.data[i], i, labels.path, o.num_classes);
  ds.channels = 1;
  ds.height = static_cast<int>(h);
  ds.width = static_cast<int>(w);
  ds.files = {images.path, labels.path};
  const std::size_t keep = o.max_count ? std::min<std::size_t>(o.max_count, n) : n;
  const std::size_t stride = ds.image_size();
  ds.images.assign(img.data.begin(), img.data.begin() + keep * stride);
  ds.labels.assign(lab.data.begin(), lab.data.begin() + keep);
  ds.source_index.resize(keep);
  for (std::size_t i = 0; i < keep; ++i) ds.source_index[i] = i;
}

std::string mask_path_for(const std::string& data_path) {
  fs::path p(data_path);
  std::string stem = p.filename().string();
  for (const char* ext : {".xz", ".gz", ".bin"})
    if (stem.size() > std::strlen(ext) && stem.ends_with(ext)) stem.resize(stem.size() - std::strlen(ext));
  return (p.parent_path() / (stem + ".exact_mask.u8")).string();
}

std::vector<std::uint8_t> read_mask(const std::string& path, std::size_t records,
                                    const std::string& data_path) {
  std::vector<std::uint8_t> mask = read_file_bytes(path);
  VEIL_CHECK_IO(mask.size() == records, "exact mask " << path << " has " << mask.size() << " bytes but "
                                                      << data_path << " holds " << records << " records");
  for (std::size_t i = 0; i < mask.size(); ++i)
    VEIL_CHECK_IO(mask[i] <= 1,
                  "exact mask " << path << ": byte " << i << " is " << int(mask[i]) << ", expected 0 or 1");
  return mask;
}

void load_cifar(const std::vector<Part>& parts, const LoadOptions& o, Dataset& ds) {
  VEIL_REQUIRE(o.exact_mask_path.empty() || parts.size() == 1,
               "exact_mask_path names one mask but " << parts.size() << " CIFAR-10 files were given");
  // Masks: all files have one or none do (a partial mask would mislabel records).
  std::vector<std::vector<std::uint8_t>> masks(parts.size());
  std::string with_mask, without_mask;
  for (std::size_t f = 0; f < parts.size(); ++f) {
    const std::size_t records = parts[f].bytes.size() / kCifarRecord;
    const std::string mp = o.exact_mask_path.empty() ? mask_path_for(parts[f].path) : o.exact_mask_path;
    if (!o.exact_mask_path.empty())
      VEIL_CHECK_IO(fs::is_regular_file(mp), "exact mask " << mp << " does not exist");
    if (fs::is_regular_file(mp)) {
      masks[f] = read_mask(mp, records, parts[f].path);
      ds.files.push_back(mp);
      with_mask = parts[f].path;
    } else {
      without_mask = mp;
    }
  }
  const bool have_masks = !with_mask.empty();
  VEIL_CHECK_IO(!have_masks || without_mask.empty(),
                "exact mask found for " << with_mask << " but not " << without_mask);
  VEIL_CHECK_IO(have_masks || !o.exact_only,
                "exact_only needs an exact mask, but none was found (looked for "
                    << without_mask
                    << "); the reconstructed CIFAR-10 copy ships one per file. If these are "
                       "the original files, load them without exact_only");

  ds.channels = 3;
  ds.height = 32;
  ds.width = 32;
  std::size_t global = 0;
  for (std::size_t f = 0; f < parts.size(); ++f) {
    const Part& part = parts[f];
    ds.files.insert(ds.files.begin() + f, part.path);
    const std::size_t records = part.bytes.size() / kCifarRecord;
    for (std::size_t r = 0; r < records; ++r, ++global) {
      const std::uint8_t* rec = part.bytes.data() + r * kCifarRecord;
      check_label(rec[0], r, part.path, o.num_classes);
      const bool exact = !have_masks || masks[f][r] != 0;
      if ((o.exact_only && !exact) || !room_for_more(ds, o)) continue;
      ds.labels.push_back(rec[0]);
      ds.images.insert(ds.images.end(), rec + 1, rec + kCifarRecord);
      ds.source_index.push_back(global);
      if (have_masks) ds.exact_mask.push_back(exact ? 1 : 0);
    }
  }
}

// IDX image/label name pairs in a directory, keyed by the common prefix.
struct IdxPair {
  std::string prefix, images, labels;
};

// Splits "<prefix>images-idx3-ubyte[.gz]" (also "images.idx3-ubyte") into prefix; the
// labels file has the same prefix and "labels-idx1-ubyte".
bool split_idx_name(const std::string& name, const char* kind, std::string& prefix) {
  const std::string base = name.ends_with(".gz") ? name.substr(0, name.size() - 3) : name;
  for (const char sep : {'-', '.'}) {
    const std::string tail =
        std::string(kind) + sep + (std::string(kind) == "images" ? "idx3-ubyte" : "idx1-ubyte");
    if (base.ends_with(tail)) {
      prefix = base.substr(0, base.size() - tail.size());
      return true;
    }
  }
  return false;
}

std::vector<IdxPair> find_idx_pairs(const fs::path& dir) {
  std::vector<std::pair<std::string, std::string>> images, labels;  // prefix, path
  for (const auto& e : fs::directory_iterator(dir)) {
    if (!e.is_regular_file()) continue;
    const std::string name = e.path().filename().string();
    std::string prefix;
    if (split_idx_name(name, "images", prefix)) images.emplace_back(prefix, e.path().string());
    if (split_idx_name(name, "labels", prefix)) labels.emplace_back(prefix, e.path().string());
  }
  // Prefer the uncompressed file when both "x" and "x.gz" exist (faster, same data).
  auto by_prefix = [](auto& v) {
    std::sort(v.begin(), v.end(), [](const auto& a, const auto& b) {
      return a.first != b.first ? a.first < b.first : a.second.size() < b.second.size();
    });
  };
  by_prefix(images);
  by_prefix(labels);
  std::vector<IdxPair> pairs;
  for (const auto& [prefix, path] : images) {
    if (!pairs.empty() && pairs.back().prefix == prefix) continue;
    for (const auto& [lp, lpath] : labels)
      if (lp == prefix) {
        pairs.push_back({prefix, path, lpath});
        break;
      }
  }
  return pairs;
}

std::vector<std::string> find_in_directory(const fs::path& dir, const std::string& name, int depth = 0) {
  std::vector<IdxPair> pairs = find_idx_pairs(dir);
  std::string cifar;
  for (const char* f : {"test_batch.bin", "test_batch.bin.xz", "test_batch.bin.gz"})
    if (cifar.empty() && fs::is_regular_file(dir / f)) cifar = (dir / f).string();

  const bool want_idx = name != "cifar10", want_cifar = name.empty() || name == "cifar10";
  if (want_idx && !pairs.empty()) {
    VEIL_CHECK_IO(!(want_cifar && !cifar.empty()),
                  "directory " << dir.string()
                               << " holds both IDX (MNIST-style) and CIFAR-10 files; name the "
                                  "data set (mnist, fashion-mnist or cifar10)");
    // The test set: "t10k-" (MNIST, Fashion-MNIST), else "test*", else the only pair.
    for (const char* p : {"t10k-", "test-", "test_", "test"})
      for (const auto& pair : pairs)
        if (pair.prefix == p) return {pair.images, pair.labels};
    if (pairs.size() == 1) return {pairs[0].images, pairs[0].labels};
    std::string names;
    for (const auto& pair : pairs) {
      names += ' ';
      names += fs::path(pair.images).filename().string();
    }
    VEIL_CHECK_IO(false, "directory " << dir.string() << " holds several IDX sets and no t10k-"
                                      << " test set:" << names << "; name the images and labels files");
  }
  if (want_cifar && !cifar.empty()) return {cifar};

  // A parent such as <repo>/data: descend into the sub-directory named after the set.
  if (!name.empty() && depth == 0)
    for (const char* sub : {name.c_str(), name == "cifar10" ? "cifar-10-batches-bin" : ""})
      if (*sub && fs::is_directory(dir / sub)) return find_in_directory(dir / sub, name, 1);

  VEIL_DATA_FAIL("no data set found in " << dir.string()
                                         << " (looked for t10k-images-idx3-ubyte[.gz] + "
                                            "t10k-labels-idx1-ubyte[.gz], any "
                                            "*-images-idx3-ubyte / *-labels-idx1-ubyte "
                                            "pair, or CIFAR-10 test_batch.bin[.xz])");
}

// The labels file next to an IDX images file: "...images-idx3..." -> "...labels-idx1...".
std::string companion_labels(const std::string& images_path) {
  fs::path p(images_path);
  std::string name = p.filename().string();
  for (const char* from : {"images-idx3", "images.idx3"}) {
    const auto at = name.find(from);
    if (at == std::string::npos) continue;
    std::string label_name = name;
    label_name.replace(at, 11, from[6] == '-' ? "labels-idx1" : "labels.idx1");
    std::string base = label_name.ends_with(".gz") ? label_name.substr(0, label_name.size() - 3) : label_name;
    for (const std::string& cand : {label_name, base, base + ".gz"})
      if (fs::is_regular_file(p.parent_path() / cand)) return (p.parent_path() / cand).string();
    VEIL_CHECK_IO(false, "no labels file for " << images_path << " (looked for "
                                               << (p.parent_path() / label_name).string()
                                               << "); pass both files, comma-separated");
  }
  VEIL_DATA_FAIL("cannot find the labels for IDX images file "
                 << images_path
                 << " (its name has no \"images-idx3\"); pass images and labels "
                    "files, comma-separated");
}

std::vector<std::string> split_list(const std::string& list) {
  std::vector<std::string> out;
  std::size_t start = 0;
  for (;;) {
    const std::size_t comma = list.find(',', start);
    std::string item = list.substr(start, comma == std::string::npos ? comma : comma - start);
    const auto b = item.find_first_not_of(" \t"), e = item.find_last_not_of(" \t");
    VEIL_REQUIRE(b != std::string::npos, "empty entry in data file list \"" << list << "\"");
    out.push_back(item.substr(b, e - b + 1));
    if (comma == std::string::npos) break;
    start = comma + 1;
  }
  return out;
}

void check_geometry(const Dataset& ds, const std::string& name, const std::string& where) {
  if (name.empty()) return;
  const bool cifar = name == "cifar10";
  const int c = cifar ? 3 : 1, hw = cifar ? 32 : 28;
  VEIL_CHECK_IO(ds.channels == c && ds.height == hw && ds.width == hw,
                where << ": expected " << name << " images of " << c << "x" << hw << "x" << hw << ", found "
                      << ds.channels << "x" << ds.height << "x" << ds.width);
}

}  // namespace

Image Dataset::image(std::size_t i) const {
  VEIL_REQUIRE(i < size(), "Dataset::image: index " << i << " out of range (" << size() << " records)");
  Image im;
  im.channels = channels;
  im.height = height;
  im.width = width;
  const auto px = pixels(i);
  im.pixels.assign(px.begin(), px.end());
  return im;
}

std::size_t Dataset::exact_count() const {
  if (exact_mask.empty()) return size();
  return static_cast<std::size_t>(std::count(exact_mask.begin(), exact_mask.end(), 1));
}

std::string canonical_dataset_name(std::string_view hint) {
  std::string h = lower(hint);
  std::erase_if(h, [](char c) { return c == '-' || c == '_' || c == ' '; });
  if (h.empty()) return "";
  if (h == "mnist") return "mnist";
  if (h == "fashionmnist" || h == "fashion" || h == "fmnist") return "fashion-mnist";
  VEIL_REQUIRE(h == "cifar10" || h == "cifar",
               "unknown data set \"" << hint << "\" (expected mnist, fashion-mnist or cifar10)");
  return "cifar10";
}

Dataset load_dataset(const std::string& path, std::string_view hint, std::size_t max_count) {
  LoadOptions o;
  o.max_count = max_count;
  return load_dataset(path, hint, o);
}

Dataset load_dataset(const std::string& path, std::string_view hint, const LoadOptions& options) {
  const std::string name = canonical_dataset_name(hint);
  VEIL_REQUIRE(options.num_classes >= 1 && options.num_classes <= 256,
               "num_classes must be 1..256, got " << options.num_classes);
  VEIL_REQUIRE(!path.empty(), "load_dataset: no data path given (the CLI resolves default locations)");
  const std::string& where = path;

  std::vector<std::string> files;
  if (where.find(',') != std::string::npos) {
    files = split_list(where);
  } else if (fs::is_directory(where)) {
    files = find_in_directory(where, name);
  } else {
    VEIL_CHECK_IO(fs::exists(where), "data path "
                                         << where << " does not exist"
                                         << (path.empty() ? " (default location for " + name + ")" : ""));
    files = {where};
  }

  // With a record limit (and no exact-only filter, which needs the masks to count), the
  // CIFAR-10 files after those that hold the records asked for are not read at all (each
  // is a 30 MB xz stream, about half a second to decompress).
  const std::size_t wanted = options.max_count != 0 ? options.max_count + options.skip : 0;
  std::vector<Part> parts;
  std::size_t cifar_records = 0;
  bool all_cifar = true;
  for (const auto& f : files) {
    if (wanted != 0 && !options.exact_only && !parts.empty() && all_cifar && cifar_records >= wanted) break;
    parts.push_back(read_part(f));
    all_cifar = all_cifar && parts.back().kind == FileKind::kCifar;
    cifar_records += parts.back().bytes.size() / kCifarRecord;
  }
  // One IDX images file alone: fetch its labels.
  if (parts.size() == 1 && parts[0].kind == FileKind::kIdxImages)
    parts.push_back(read_part(companion_labels(parts[0].path)));

  // Load skip + max_count records, then drop the first skip.
  LoadOptions load = options;
  if (options.max_count != 0) load.max_count = options.max_count + options.skip;
  Dataset ds;
  const auto count = [&](FileKind k) {
    return std::count_if(parts.begin(), parts.end(), [k](const Part& p) { return p.kind == k; });
  };
  const bool cifar = count(FileKind::kCifar) == static_cast<long>(parts.size());
  VEIL_CHECK_IO(
      name.empty() || cifar == (name == "cifar10"),
      where << ": expected " << name << " data, found " << (cifar ? "CIFAR-10 binary records" : "IDX files"));
  if (cifar) {
    load_cifar(parts, load, ds);
    ds.name = "cifar10";
  } else {
    VEIL_CHECK_IO(parts.size() == 2 && count(FileKind::kIdxImages) == 1 && count(FileKind::kIdxLabels) == 1,
                  where << ": expected one IDX images file and one IDX labels file, or only "
                           "CIFAR-10 binaries");
    const bool images_first = parts[0].kind == FileKind::kIdxImages;
    // IDX data sets are the original files: every record is exact, no mask.
    load_idx(parts[images_first ? 0 : 1], parts[images_first ? 1 : 0], load, ds);
    const std::string l = lower(where);
    ds.name = !name.empty()                            ? name
              : l.find("fashion") != std::string::npos ? "fashion-mnist"
              : l.find("mnist") != std::string::npos   ? "mnist"
                                                       : "";
  }
  check_geometry(ds, name, where);
  if (options.skip != 0) {
    VEIL_REQUIRE(options.skip < ds.size(), "skipping " << options.skip << " records leaves none: " << where
                                                       << " holds " << ds.size()
                                                       << (options.exact_only ? " exact" : "") << " records");
    const auto k = static_cast<std::ptrdiff_t>(options.skip);
    ds.images.erase(ds.images.begin(), ds.images.begin() + k * static_cast<std::ptrdiff_t>(ds.image_size()));
    ds.labels.erase(ds.labels.begin(), ds.labels.begin() + k);
    ds.source_index.erase(ds.source_index.begin(), ds.source_index.begin() + k);
    if (!ds.exact_mask.empty()) ds.exact_mask.erase(ds.exact_mask.begin(), ds.exact_mask.begin() + k);
  }
  ds.num_classes = options.num_classes;
  return ds;
}

std::vector<std::uint8_t> encode_cifar10(std::span<const std::uint8_t> images, std::span<const int> labels) {
  VEIL_REQUIRE(images.size() == labels.size() * kCifarPixels,
               "encode_cifar10: " << images.size() << " pixel bytes for " << labels.size()
                                  << " labels, expected " << labels.size() * kCifarPixels);
  std::vector<std::uint8_t> out;
  out.reserve(labels.size() * kCifarRecord);
  for (std::size_t i = 0; i < labels.size(); ++i) {
    VEIL_REQUIRE(labels[i] >= 0 && labels[i] <= 255,
                 "encode_cifar10: label " << labels[i] << " does not fit a byte");
    out.push_back(static_cast<std::uint8_t>(labels[i]));
    out.insert(out.end(), images.begin() + i * kCifarPixels, images.begin() + (i + 1) * kCifarPixels);
  }
  return out;
}

}  // namespace veil::data
