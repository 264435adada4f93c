// Default data locations (resolved by the command, relative to its checkout) and the data
// sets installed there, when this machine has them.
#include "veil/cli/data_paths.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <filesystem>

#include "data/data_test_util.hpp"
#include "veil/data/dataset.hpp"

namespace veil::cli {
namespace {

using data::Dataset;
using data::load_dataset;
using data::test::sample;
using data::test::TempDir;

TEST(DataPaths, DefaultDirectoriesFollowTheCheckoutAndTheEnvironment) {
  const char* saved = std::getenv("VEIL_DATA_DIR");
  const std::string saved_value = saved ? saved : "";
  unsetenv("VEIL_DATA_DIR");
  TempDir repo;
  EXPECT_EQ(default_data_dir("mnist", repo.str()), repo.file("data/mnist"));  // none exists
  std::filesystem::create_directories(repo.file("data/cifar10"));
  EXPECT_EQ(default_data_dir("cifar10", repo.str()), repo.file("data/cifar10"));
  if (std::filesystem::is_directory("/usr/share/datasets/fashion-mnist")) {
    EXPECT_EQ(default_data_dir("fashion-mnist", repo.str()), "/usr/share/datasets/fashion-mnist");
  }
  TempDir env;
  std::filesystem::create_directories(env.file("mnist"));
  setenv("VEIL_DATA_DIR", env.str().c_str(), 1);
  EXPECT_EQ(default_data_dir("mnist", repo.str()), env.file("mnist"));
  EXPECT_EQ(default_data_dir("cifar10", repo.str()), repo.file("data/cifar10"));
  if (saved)
    setenv("VEIL_DATA_DIR", saved_value.c_str(), 1);
  else
    unsetenv("VEIL_DATA_DIR");
  EXPECT_THROW(default_data_dir("", repo.str()), std::invalid_argument);
}

// The installed data sets, when this machine has them (see default_data_dir).
TEST(DataPaths, InstalledTestSets) {
  for (const char* name : {"mnist", "fashion-mnist"}) {
    if (!std::filesystem::is_directory(default_data_dir(name))) {
      std::printf("[ skipped  ] %s not installed at %s\n", name, default_data_dir(name).c_str());
      continue;
    }
    const Dataset ds = load_dataset(default_data_dir(name), name);
    EXPECT_EQ(ds.size(), 10000u) << name;
    EXPECT_EQ(ds.height, 28);
    const std::string first16 = name == std::string("mnist") ? "mnist" : "fashion";
    const Dataset s = load_dataset(sample(first16 + "-test-first16-images-idx3-ubyte"));
    EXPECT_TRUE(std::equal(s.images.begin(), s.images.end(), ds.images.begin())) << name;
  }
  if (!std::filesystem::is_directory(default_data_dir("cifar10"))) {
    std::printf("[ skipped  ] cifar10 not installed\n");
    return;
  }
  const Dataset c = load_dataset(default_data_dir("cifar10"), "cifar10");
  ASSERT_EQ(c.size(), 10000u);
  ASSERT_TRUE(c.has_exact_mask());
  std::vector<int> per_class(10);
  for (int l : c.labels) ++per_class[l];
  EXPECT_EQ(per_class, std::vector<int>(10, 1000));
  // The README: test records 0-1016 hold the original pixels.
  EXPECT_EQ(c.exact_count(), 1017u);
  EXPECT_TRUE(c.is_exact(1016));
  EXPECT_FALSE(c.is_exact(1017));
  const Dataset s = load_dataset(sample("cifar10-test-first16-exact.bin"));
  EXPECT_TRUE(std::equal(s.images.begin(), s.images.end(), c.images.begin()));
}

// The hybrid mode's calibration reads training images: the shared CIFAR-10 copy is
// xz-compressed (data_batch_1.bin.xz), which an earlier list missed, so the scales were
// chosen on test images.
TEST(DataPaths, TrainingFilesFindCompressedCopies) {
  TempDir dir;
  EXPECT_TRUE(training_files(dir.str()).empty());
  data::test::spit(dir.file("test_batch.bin.xz"), {1});
  EXPECT_TRUE(training_files(dir.str()).empty());
  data::test::spit(dir.file("data_batch_1.bin.xz"), {1});
  EXPECT_EQ(training_files(dir.str()), std::vector<std::string>{dir.file("data_batch_1.bin.xz")});
  data::test::spit(dir.file("data_batch_1.bin"), {1});
  EXPECT_EQ(training_files(dir.str()),
            (std::vector<std::string>{dir.file("data_batch_1.bin"), dir.file("data_batch_1.bin.xz")}));
  TempDir mnist;
  data::test::spit(mnist.file("train-images-idx3-ubyte.gz"), {1});
  EXPECT_EQ(training_files(mnist.str()), std::vector<std::string>{mnist.file("train-images-idx3-ubyte.gz")});
  const std::string cifar = default_data_dir("cifar10");
  if (std::filesystem::is_directory(cifar)) {
    const auto files = training_files(cifar);
    ASSERT_FALSE(files.empty()) << "no training batch in " << cifar;
    const Dataset ds = load_dataset(files.front(), "cifar10", 64);
    EXPECT_EQ(ds.size(), 64u);
    // (the test set's first labels are 3, 8, 8, 0: the training set's are 6, 9, 9, 4)
    EXPECT_EQ(std::vector<int>(ds.labels.begin(), ds.labels.begin() + 4), (std::vector<int>{6, 9, 9, 4}));
  }
}

TEST(DataPaths, EmptyPathIsRefusedByTheLibrary) {
  EXPECT_THROW(load_dataset("", "mnist"), std::invalid_argument);
}

}  // namespace
}  // namespace veil::cli
