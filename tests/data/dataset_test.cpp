#include "veil/data/dataset.hpp"

#include <gtest/gtest.h>
#include <zlib.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <functional>
#include <numeric>

#include "data_test_util.hpp"
#include "veil/data/file_bytes.hpp"
#include "veil/data/idx.hpp"

namespace veil::data {
namespace {

using test::sample;
using test::slurp;
using test::spit;
using test::TempDir;

const std::vector<int> kMnistFirst16 = {7, 2, 1, 0, 4, 1, 4, 9, 5, 9, 0, 6, 9, 0, 1, 5};
const std::vector<int> kCifarFirst16 = {3, 8, 8, 0, 6, 6, 1, 6, 3, 1, 0, 9, 5, 7, 9, 8};

std::string what_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const std::exception& e) {
    return e.what();
  }
  return "(no exception)";
}

void write_gz(const std::string& path, const std::vector<std::uint8_t>& bytes) {
  gzFile f = gzopen(path.c_str(), "wb");
  ASSERT_NE(f, nullptr);
  ASSERT_EQ(gzwrite(f, bytes.data(), static_cast<unsigned>(bytes.size())), static_cast<int>(bytes.size()));
  ASSERT_EQ(gzclose(f), Z_OK);
}

TEST(Dataset, MnistSampleFromImagesFileFindsItsLabels) {
  const Dataset ds = load_dataset(sample("mnist-test-first16-images-idx3-ubyte"), "mnist");
  EXPECT_EQ(ds.name, "mnist");
  EXPECT_EQ(ds.size(), 16u);
  EXPECT_EQ(ds.channels, 1);
  EXPECT_EQ(ds.height, 28);
  EXPECT_EQ(ds.width, 28);
  EXPECT_EQ(ds.images.size(), 16u * 784u);
  EXPECT_EQ(ds.labels, kMnistFirst16);
  EXPECT_FALSE(ds.has_exact_mask());
  EXPECT_EQ(ds.exact_count(), 16u);
  ASSERT_EQ(ds.files.size(), 2u);
  EXPECT_NE(ds.files[1].find("labels-idx1"), std::string::npos);
  // Exactly the IDX payload.
  const auto raw = slurp(sample("mnist-test-first16-images-idx3-ubyte"));
  EXPECT_TRUE(std::equal(ds.images.begin(), ds.images.end(), raw.begin() + 16));
}

TEST(Dataset, ExplicitFileListInEitherOrderAndMaxCount) {
  const std::string images = sample("fashion-test-first16-images-idx3-ubyte");
  const std::string labels = sample("fashion-test-first16-labels-idx1-ubyte");
  const Dataset a = load_dataset(images + "," + labels, "fashion-mnist");
  const Dataset b = load_dataset(labels + ", " + images, "", 5);
  EXPECT_EQ(a.name, "fashion-mnist");
  EXPECT_EQ(b.name, "fashion-mnist");  // guessed from the path
  EXPECT_EQ(a.size(), 16u);
  ASSERT_EQ(b.size(), 5u);
  EXPECT_EQ(a.labels[0], 9);
  EXPECT_TRUE(std::equal(b.images.begin(), b.images.end(), a.images.begin()));
  EXPECT_EQ(b.source_index, (std::vector<std::size_t>{0, 1, 2, 3, 4}));
  EXPECT_THROW(load_dataset(images + ",", ""), std::invalid_argument);
  EXPECT_THROW(load_dataset(images + "," + images, ""), std::runtime_error);
}

TEST(Dataset, DirectoryWithGzipIdxAndT10kNames) {
  TempDir dir;
  const auto images = slurp(sample("mnist-test-first16-images-idx3-ubyte"));
  const auto labels = slurp(sample("mnist-test-first16-labels-idx1-ubyte"));
  write_gz(dir.file("t10k-images-idx3-ubyte.gz"), images);
  write_gz(dir.file("t10k-labels-idx1-ubyte.gz"), labels);
  // A training pair alongside must not be picked.
  spit(dir.file("train-images-idx3-ubyte"), encode_idx({1, 28, 28}, std::vector<std::uint8_t>(784)));
  spit(dir.file("train-labels-idx1-ubyte"), encode_idx({1}, std::vector<std::uint8_t>{3}));
  EXPECT_EQ(read_file_bytes(dir.file("t10k-images-idx3-ubyte.gz")), images);

  const Dataset ds = load_dataset(dir.str(), "mnist");
  EXPECT_EQ(ds.size(), 16u);
  EXPECT_EQ(ds.labels, kMnistFirst16);
  EXPECT_TRUE(std::equal(ds.images.begin(), ds.images.end(), images.begin() + 16));
  EXPECT_NE(ds.files[0].find("t10k-images"), std::string::npos);

  // The parent directory with a hint descends into the named sub-directory.
  TempDir parent;
  std::filesystem::create_directory(parent.file("mnist"));
  spit(parent.file("mnist/t10k-images-idx3-ubyte"), images);
  spit(parent.file("mnist/t10k-labels-idx1-ubyte"), labels);
  EXPECT_EQ(load_dataset(parent.str(), "mnist").size(), 16u);
  EXPECT_NE(what_of([&] { load_dataset(parent.str(), ""); }).find("no data set found"), std::string::npos);
}

TEST(Dataset, AmbiguousDirectoryAsksForNames) {
  // models/samples holds two IDX sets (MNIST and Fashion-MNIST) and no t10k- files.
  const std::string msg = what_of([] { load_dataset(test::samples_dir(), "mnist"); });
  EXPECT_NE(msg.find("several IDX sets"), std::string::npos) << msg;
}

TEST(Dataset, CountMismatchAndBadLabels) {
  TempDir dir;
  const auto images = slurp(sample("mnist-test-first16-images-idx3-ubyte"));
  std::vector<std::uint8_t> labels15(kMnistFirst16.begin(), kMnistFirst16.end() - 1);
  spit(dir.file("a-images-idx3-ubyte"), images);
  spit(dir.file("a-labels-idx1-ubyte"), encode_idx({15}, labels15));
  const std::string msg = what_of([&] { load_dataset(dir.file("a-images-idx3-ubyte")); });
  EXPECT_NE(msg.find("16 images"), std::string::npos) << msg;
  EXPECT_NE(msg.find("15 labels"), std::string::npos) << msg;
  EXPECT_NE(msg.find("a-labels-idx1-ubyte"), std::string::npos) << msg;

  std::vector<std::uint8_t> labels16(kMnistFirst16.begin(), kMnistFirst16.end());
  labels16[3] = 10;
  spit(dir.file("a-labels-idx1-ubyte"), encode_idx({16}, labels16));
  EXPECT_NE(what_of([&] { load_dataset(dir.file("a-images-idx3-ubyte")); }).find("out of range"),
            std::string::npos);
  LoadOptions eleven;
  eleven.num_classes = 11;
  EXPECT_EQ(load_dataset(dir.file("a-images-idx3-ubyte"), "", eleven).labels[3], 10);
  eleven.num_classes = 0;
  EXPECT_THROW(load_dataset(dir.file("a-images-idx3-ubyte"), "", eleven), std::invalid_argument);
}

TEST(Dataset, TruncatedAndMalformedIdx) {
  TempDir dir;
  const auto images = slurp(sample("mnist-test-first16-images-idx3-ubyte"));
  const auto labels = slurp(sample("mnist-test-first16-labels-idx1-ubyte"));
  spit(dir.file("t-labels-idx1-ubyte"), labels);

  spit(dir.file("t-images-idx3-ubyte"), {images.begin(), images.end() - 100});
  std::string msg = what_of([&] { load_dataset(dir.file("t-images-idx3-ubyte")); });
  EXPECT_NE(msg.find("truncated"), std::string::npos) << msg;
  EXPECT_NE(msg.find("t-images-idx3-ubyte"), std::string::npos) << msg;

  std::vector<std::uint8_t> longer = images;
  longer.push_back(0);
  spit(dir.file("t-images-idx3-ubyte"), longer);
  msg = what_of([&] { load_dataset(dir.file("t-images-idx3-ubyte")); });
  EXPECT_NE(msg.find("trailing"), std::string::npos) << msg;

  // Header only, absurd dimensions: rejected before allocating anything.
  std::vector<std::uint8_t> huge = {0, 0, 8, 3, 0xff, 0xff, 0xff, 0xff, 0, 1, 0, 0, 0, 1, 0, 0};
  spit(dir.file("t-images-idx3-ubyte"), huge);
  EXPECT_THROW(load_dataset(dir.file("t-images-idx3-ubyte")), std::runtime_error);
  EXPECT_THROW(parse_idx(huge, "huge"), std::runtime_error);

  // Float IDX: recognised, refused with the reason.
  std::vector<std::uint8_t> f32 = {0, 0, 0x0D, 1, 0, 0, 0, 1, 0, 0, 0x80, 0x3f};
  EXPECT_NE(what_of([&] { parse_idx(f32, "f32"); }).find("float32"), std::string::npos);

  // Truncated gzip.
  write_gz(dir.file("g.gz"), images);
  const auto gz = slurp(dir.file("g.gz"));
  spit(dir.file("g.gz"), {gz.begin(), gz.begin() + gz.size() / 2});
  msg = what_of([&] { read_file_bytes(dir.file("g.gz")); });
  EXPECT_NE(msg.find("truncated"), std::string::npos) << msg;
  // Corrupt gzip body.
  std::vector<std::uint8_t> bad = gz;
  for (std::size_t i = 20; i < 40; ++i) bad[i] ^= 0xa5;
  spit(dir.file("bad.gz"), bad);
  EXPECT_THROW(read_file_bytes(dir.file("bad.gz")), std::runtime_error);
  // Size limit on decompression.
  spit(dir.file("g.gz"), gz);
  EXPECT_THROW(read_file_bytes(dir.file("g.gz"), 1000), std::runtime_error);

  EXPECT_THROW(load_dataset(dir.file("missing-images-idx3-ubyte")), std::runtime_error);
  spit(dir.file("junk.bin"), {1, 2, 3});
  msg = what_of([&] { load_dataset(dir.file("junk.bin")); });
  EXPECT_NE(msg.find("not a data set file"), std::string::npos) << msg;
}

TEST(Dataset, CifarSampleRecords) {
  const Dataset ds = load_dataset(sample("cifar10-test-first16-exact.bin"), "cifar10");
  EXPECT_EQ(ds.name, "cifar10");
  EXPECT_EQ(ds.size(), 16u);
  EXPECT_EQ(ds.channels, 3);
  EXPECT_EQ(ds.height, 32);
  EXPECT_EQ(ds.labels, kCifarFirst16);
  EXPECT_FALSE(ds.has_exact_mask());
  const auto raw = slurp(sample("cifar10-test-first16-exact.bin"));
  EXPECT_TRUE(std::equal(ds.images.begin(), ds.images.begin() + 3072, raw.begin() + 1));
  EXPECT_EQ(encode_cifar10(ds.images, ds.labels), raw);
  // Wrong hint: named data set and geometry are checked.
  EXPECT_NE(
      what_of([] { load_dataset(sample("cifar10-test-first16-exact.bin"), "mnist"); }).find("expected mnist"),
      std::string::npos);
  EXPECT_THROW(load_dataset(sample("mnist-test-first16-images-idx3-ubyte"), "cifar10"), std::runtime_error);
  EXPECT_THROW(load_dataset(sample("cifar10-test-first16-exact.bin"), "imagenet"), std::invalid_argument);
  // exact_only without a mask: refused rather than guessed.
  LoadOptions exact;
  exact.exact_only = true;
  const std::string msg = what_of([&] { load_dataset(sample("cifar10-test-first16-exact.bin"), "", exact); });
  EXPECT_NE(msg.find("cifar10-test-first16-exact.exact_mask.u8"), std::string::npos) << msg;
}

TEST(Dataset, CifarExactMask) {
  TempDir dir;
  const auto raw = slurp(sample("cifar10-test-first16-exact.bin"));
  spit(dir.file("test_batch.bin"), raw);
  std::vector<std::uint8_t> mask(16, 0);
  for (int i : {0, 2, 3, 7, 11, 15}) mask[i] = 1;
  spit(dir.file("test_batch.exact_mask.u8"), mask);

  const Dataset all = load_dataset(dir.str(), "cifar10");
  ASSERT_EQ(all.size(), 16u);
  EXPECT_EQ(all.exact_mask, mask);
  EXPECT_EQ(all.exact_count(), 6u);
  EXPECT_TRUE(all.is_exact(2));
  EXPECT_FALSE(all.is_exact(1));
  EXPECT_EQ(all.files.size(), 2u);

  LoadOptions o;
  o.exact_only = true;
  const Dataset exact = load_dataset(dir.str(), "cifar10", o);
  EXPECT_EQ(exact.source_index, (std::vector<std::size_t>{0, 2, 3, 7, 11, 15}));
  EXPECT_EQ(exact.exact_count(), 6u);
  for (std::size_t i = 0; i < exact.size(); ++i) {
    EXPECT_EQ(exact.labels[i], kCifarFirst16[exact.source_index[i]]);
    const auto want = all.pixels(exact.source_index[i]);
    const auto got = exact.pixels(i);
    EXPECT_TRUE(std::equal(got.begin(), got.end(), want.begin()));
  }
  o.max_count = 4;  // applied after the filter
  EXPECT_EQ(load_dataset(dir.str(), "cifar10", o).source_index, (std::vector<std::size_t>{0, 2, 3, 7}));
  // skip drops records after the filter and before the count: a run split in two
  // covers the same records as the whole.
  o.skip = 2;
  o.max_count = 3;
  const Dataset tail = load_dataset(dir.str(), "cifar10", o);
  EXPECT_EQ(tail.source_index, (std::vector<std::size_t>{3, 7, 11}));
  ASSERT_EQ(tail.exact_mask.size(), 3u);
  for (std::size_t i = 0; i < tail.size(); ++i) {
    EXPECT_EQ(tail.labels[i], kCifarFirst16[tail.source_index[i]]);
    const auto want = all.pixels(tail.source_index[i]);
    const auto got = tail.pixels(i);
    EXPECT_TRUE(std::equal(got.begin(), got.end(), want.begin()));
  }
  o.skip = 6;  // all six exact records skipped
  const std::string none = what_of([&] { load_dataset(dir.str(), "cifar10", o); });
  EXPECT_NE(none.find("skipping 6 records leaves none"), std::string::npos) << none;
  o.skip = 0;

  // Two files concatenate, numbering records consecutively.
  spit(dir.file("second.bin"), raw);
  spit(dir.file("second.exact_mask.u8"), std::vector<std::uint8_t>(16, 1));
  o.max_count = 0;
  const Dataset two = load_dataset(dir.file("test_batch.bin") + "," + dir.file("second.bin"), "", o);
  EXPECT_EQ(two.size(), 22u);
  EXPECT_EQ(two.source_index[6], 16u);

  // Explicit mask path overrides the neighbour.
  spit(dir.file("other.u8"), std::vector<std::uint8_t>(16, 1));
  o.exact_mask_path = dir.file("other.u8");
  EXPECT_EQ(load_dataset(dir.file("test_batch.bin"), "", o).size(), 16u);

  // Mask problems are named.
  spit(dir.file("test_batch.exact_mask.u8"), std::vector<std::uint8_t>(15, 1));
  std::string msg = what_of([&] { load_dataset(dir.str(), "cifar10"); });
  EXPECT_NE(msg.find("15 bytes"), std::string::npos) << msg;
  mask[5] = 2;
  spit(dir.file("test_batch.exact_mask.u8"), mask);
  msg = what_of([&] { load_dataset(dir.str(), "cifar10"); });
  EXPECT_NE(msg.find("expected 0 or 1"), std::string::npos) << msg;
}

TEST(Dataset, CifarTruncatedAndBadLabel) {
  TempDir dir;
  auto raw = slurp(sample("cifar10-test-first16-exact.bin"));
  spit(dir.file("cut.bin"), {raw.begin(), raw.end() - 7});
  std::string msg = what_of([&] { load_dataset(dir.file("cut.bin")); });
  EXPECT_NE(msg.find("3073"), std::string::npos) << msg;
  EXPECT_NE(msg.find("cut.bin"), std::string::npos) << msg;
  raw[3073 * 5] = 12;
  spit(dir.file("label.bin"), raw);
  msg = what_of([&] { load_dataset(dir.file("label.bin")); });
  EXPECT_NE(msg.find("record 5"), std::string::npos) << msg;
}

TEST(Dataset, CifarListReadsOnlyTheFilesTheCountNeeds) {
  // A record limit stops reading a list of CIFAR-10 files once it has enough records (the
  // hybrid mode's 64 calibration images from five 30 MB training files); a later file is
  // then not even opened, which a corrupt one shows. Without the limit, or with
  // exact_only, every file is read and checked.
  TempDir dir;
  const auto raw = slurp(sample("cifar10-test-first16-exact.bin"));
  spit(dir.file("a.bin"), raw);
  spit(dir.file("cut.bin"), {raw.begin(), raw.end() - 7});
  const std::string list = dir.file("a.bin") + "," + dir.file("cut.bin");
  LoadOptions o;
  o.max_count = 16;
  const Dataset first = load_dataset(list, "cifar10", o);
  EXPECT_EQ(first.labels, kCifarFirst16);
  EXPECT_EQ(first.files, std::vector<std::string>{dir.file("a.bin")});
  o.max_count = 10;
  o.skip = 6;  // 16 records wanted in all: still the first file alone
  EXPECT_EQ(load_dataset(list, "cifar10", o).source_index.back(), 15u);
  o.skip = 7;  // 17: the second file is needed, and its flaw is reported
  EXPECT_NE(what_of([&] { load_dataset(list, "cifar10", o); }).find("cut.bin"), std::string::npos);
  EXPECT_NE(what_of([&] { load_dataset(list, "cifar10"); }).find("cut.bin"), std::string::npos);
  // Two good files and a limit past the first: both are read, numbered consecutively.
  spit(dir.file("b.bin"), raw);
  o.skip = 0;
  o.max_count = 20;
  const Dataset two = load_dataset(dir.file("a.bin") + "," + dir.file("b.bin"), "cifar10", o);
  EXPECT_EQ(two.size(), 20u);
  EXPECT_EQ(two.labels[17], kCifarFirst16[1]);
}

TEST(Dataset, CifarXzWhenTheToolIsThere) {
  if (std::system("command -v xz >/dev/null 2>&1") != 0) GTEST_SKIP() << "no xz command";
  TempDir dir;
  spit(dir.file("test_batch.bin"), slurp(sample("cifar10-test-first16-exact.bin")));
  ASSERT_EQ(std::system(("xz -z " + dir.file("test_batch.bin")).c_str()), 0);
  ASSERT_FALSE(std::filesystem::exists(dir.file("test_batch.bin")));
  try {
    const Dataset ds = load_dataset(dir.str(), "cifar10");
    EXPECT_EQ(ds.labels, kCifarFirst16);
    EXPECT_EQ(ds.files[0], dir.file("test_batch.bin.xz"));
  } catch (const std::runtime_error& e) {
    // A build without liblzma must say how to proceed.
    EXPECT_NE(std::string(e.what()).find("xz -dk"), std::string::npos) << e.what();
  }
}

TEST(Dataset, CanonicalNames) {
  EXPECT_EQ(canonical_dataset_name("MNIST"), "mnist");
  EXPECT_EQ(canonical_dataset_name("Fashion_MNIST"), "fashion-mnist");
  EXPECT_EQ(canonical_dataset_name("cifar-10"), "cifar10");
  EXPECT_EQ(canonical_dataset_name(""), "");
  EXPECT_THROW(canonical_dataset_name("svhn"), std::invalid_argument);
}

}  // namespace
}  // namespace veil::data
