// Labelled image data sets for evaluation: MNIST and Fashion-MNIST (IDX files, raw or
// gzip) and CIFAR-10 (binary records, raw or xz). Formats are recognised from the file
// contents; a directory is searched for its test set.
//
// Our CIFAR-10 copy is reconstructed (see the README beside the shared copy, ../shared/data/cifar10/README.md
// from the checkout): only some records hold the original pixels. Next to each `X.bin[.xz]` lies
// `X.exact_mask.u8`, one byte per record (1 = original bytes, 0 = rebuilt from a JPEG copy). The loader
// attaches it as Dataset::exact_mask so reports can give accuracy on the exact subset too.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "veil/data/image.hpp"

namespace veil::data {

struct Dataset {
  std::string name;  // "mnist", "fashion-mnist", "cifar10", or "" when not known
  int channels = 0, height = 0, width = 0;
  int num_classes = 10;
  std::vector<std::uint8_t> images;  // size() records of channels x height x width, CHW
  std::vector<int> labels;
  // One byte per record (1 = exact original pixels). Empty when the files came without a
  // mask, as MNIST and Fashion-MNIST do (they are the original data): then every record
  // counts as exact.
  std::vector<std::uint8_t> exact_mask;
  // Position of each record in its file (files listed together are numbered
  // consecutively), so a report can name "test image #1234" after filtering.
  std::vector<std::size_t> source_index;
  std::vector<std::string> files;  // what was read: images, labels, masks

  std::size_t size() const { return labels.size(); }
  std::size_t image_size() const { return static_cast<std::size_t>(channels) * height * width; }
  std::span<const std::uint8_t> pixels(std::size_t i) const {
    return {images.data() + i * image_size(), image_size()};
  }
  Image image(std::size_t i) const;
  bool has_exact_mask() const { return !exact_mask.empty(); }
  bool is_exact(std::size_t i) const { return exact_mask.empty() || exact_mask[i] != 0; }
  std::size_t exact_count() const;
};

struct LoadOptions {
  // Keep at most this many records (0: all). Applied after exact_only, so
  // {max_count = 100, exact_only = true} gives the first 100 exact records.
  std::size_t max_count = 0;
  // Drop this many records first (after exact_only, before max_count), so a long run
  // can be split: {skip = 100, max_count = 100} gives records 100..199.
  std::size_t skip = 0;
  // Keep only records whose exact-mask byte is 1. CIFAR-10 files need a mask for this
  // (an error names the mask file looked for); IDX data sets are exact already.
  bool exact_only = false;
  int num_classes = 10;  // labels must lie in [0, num_classes)
  // CIFAR-10: the mask to use instead of `<stem>.exact_mask.u8` next to the data file.
  // Only valid with a single data file.
  std::string exact_mask_path;
};

// Loads a data set from `path`:
//   - a directory: MNIST-style `t10k-images-idx3-ubyte[.gz]` + `t10k-labels-idx1-ubyte[.gz]`
//     (else a `test*` pair, else the only `*-images-idx3-ubyte` / `*-labels-idx1-ubyte`
//     pair), or CIFAR-10 `test_batch.bin[.xz]`; when the directory holds neither but has
//     a sub-directory named after the hint (`mnist`, `fashion-mnist`, `cifar10`), that;
//   - one file: a CIFAR-10 binary, or an IDX images file whose labels file is found by
//     replacing `images-idx3` with `labels-idx1` in its name;
//   - a comma-separated list: one IDX images file and one IDX labels file (either order),
//     or several CIFAR-10 binaries, concatenated;
// `hint` ("mnist", "fashion-mnist", "cifar10", or "" for any) also checks the geometry
// (1x28x28 or 3x32x32). With max_count (and not exact_only), CIFAR-10 files of a list
// after those that hold skip + max_count records are neither read nor checked.
// Throws std::invalid_argument for bad options and
// std::runtime_error, naming the file, for missing, corrupt, truncated or mismatched data.
Dataset load_dataset(const std::string& path, std::string_view hint = "", const LoadOptions& options = {});
Dataset load_dataset(const std::string& path, std::string_view hint, std::size_t max_count);

// Canonical data set name for a hint ("MNIST", "fashion_mnist", "fashion", "cifar-10",
// ...); "" stays "". Throws std::invalid_argument for anything else.
std::string canonical_dataset_name(std::string_view hint);

// Builds CIFAR-10 binary records from images (CHW, 3x32x32) and labels (for tests and for
// writing subsets).
std::vector<std::uint8_t> encode_cifar10(std::span<const std::uint8_t> images, std::span<const int> labels);

}  // namespace veil::data
