// The hybrid mode's fixed-point arithmetic on the installed MNIST test set: the class the
// quantised program predicts (evaluate_fixed, which the two-party run reproduces to within
// its truncation noise; online_test.cpp checks that) against the double network's, with
// the scales chosen from training images. Labelled slow (it reads the installed data).
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <filesystem>

#include "veil/common/thread_pool.hpp"
#include "veil/data/dataset.hpp"
#include "veil/hybrid/program.hpp"
#include "veil/nn/onnx/import.hpp"
#include "veil/nn/plain_eval.hpp"

namespace veil::hybrid {
namespace {

std::string source_path(const std::string& relative) { return std::string(VEIL_SOURCE_DIR) + "/" + relative; }

TEST(HybridProgram, InstalledTestSetsAgreeWithThePlainNetwork) {
  const std::string dir = source_path("data/mnist");
  if (!std::filesystem::exists(dir + "/t10k-images-idx3-ubyte")) GTEST_SKIP() << "no MNIST data in " << dir;
  const data::Dataset test = data::load_dataset(dir, "mnist", 2000);
  const data::Dataset train = data::load_dataset(dir + "/train-images-idx3-ubyte", "mnist", 64);
  for (const char* model : {"models/mnist-cryptonets.onnx", "models/mnist-delphi.onnx"}) {
    SCOPED_TRACE(model);
    const nn::Network net = nn::lower(nn::load_onnx(source_path(model)), lower_options());
    auto image = [&](const data::Dataset& ds, std::size_t i) {
      const auto px = ds.pixels(i);
      return nn::normalize(net, std::vector<std::uint8_t>(px.begin(), px.end()));
    };
    ProgramOptions po;
    for (std::size_t i = 0; i < train.size(); ++i) po.calibration.push_back(image(train, i));
    const Program prog = lower(net, po);
    std::atomic<int> agree{0}, correct_fixed{0}, correct_plain{0};
    parallel_for(test.size(), [&](std::size_t i) {
      const auto x = image(test, i);
      const auto a = evaluate_fixed(prog, x);
      const auto b = nn::evaluate(net, x);
      const auto ca = std::max_element(a.begin(), a.end()) - a.begin();
      const auto cb = std::max_element(b.begin(), b.end()) - b.begin();
      agree += ca == cb;
      correct_fixed += ca == test.labels[i];
      correct_plain += cb == test.labels[i];
    });
    const double n = static_cast<double>(test.size());
    std::printf(
        "  %s: %zu test images, fixed point agrees with the plain network on %.2f%%; accuracy %.2f%% "
        "(plain %.2f%%)\n",
        model, test.size(), 100.0 * agree / n, 100.0 * correct_fixed / n, 100.0 * correct_plain / n);
    EXPECT_GE(agree / n, 0.995);
  }
}

// The gain of the two-prime share ring: fashion-delphi, whose fixed point on one 61-bit
// prime (20 bits below the truncation bound) disagrees with the plain network on about
// 0.6% of the test images, agrees on at least 99.9% over Z_(p0 p1).
TEST(HybridProgram, InstalledTestSetsReachTheFashionTargetOnTheTwoPrimeRing) {
  std::string dir = source_path("data/fashion-mnist");
  if (!std::filesystem::exists(dir)) dir = "/usr/share/datasets/fashion-mnist";
  if (!std::filesystem::exists(dir)) GTEST_SKIP() << "no Fashion-MNIST data";
  const data::Dataset test = data::load_dataset(dir, "fashion-mnist", 3000);
  const std::string train_file = std::filesystem::exists(dir + "/train-images-idx3-ubyte")
                                     ? dir + "/train-images-idx3-ubyte"
                                     : dir + "/train-images-idx3-ubyte.gz";
  const data::Dataset train = data::load_dataset(train_file, "fashion-mnist", 64);
  const nn::Network net =
      nn::lower(nn::load_onnx(source_path("models/fashion-delphi.onnx")), lower_options());
  auto image = [&](const data::Dataset& ds, std::size_t i) {
    const auto px = ds.pixels(i);
    return nn::normalize(net, std::vector<std::uint8_t>(px.begin(), px.end()));
  };
  ProgramOptions wide, narrow;
  for (std::size_t i = 0; i < train.size(); ++i) wide.calibration.push_back(image(train, i));
  narrow.calibration = wide.calibration;
  wide.ring = ShareRing::kTwoPrimes;
  narrow.prime2 = kNoSecondPrime;
  const Program pw = lower(net, wide), pn = lower(net, narrow);
  EXPECT_GE(pw.value_bits, pn.value_bits + 30);
  std::atomic<int> agree_wide{0}, agree_narrow{0};
  parallel_for(test.size(), [&](std::size_t i) {
    const auto x = image(test, i);
    const auto b = nn::evaluate(net, x);
    const auto cb = std::max_element(b.begin(), b.end()) - b.begin();
    for (auto [prog, agree] : {std::pair{&pw, &agree_wide}, std::pair{&pn, &agree_narrow}}) {
      const auto a = evaluate_fixed(*prog, x);
      *agree += std::max_element(a.begin(), a.end()) - a.begin() == cb;
    }
  });
  const double n = static_cast<double>(test.size());
  std::printf("  fashion-delphi, %zu test images: agreement %.2f%% over Z_p, %.2f%% over Z_(p0 p1)\n",
              test.size(), 100.0 * agree_narrow / n, 100.0 * agree_wide / n);
  EXPECT_GE(agree_wide / n, 0.999);
  EXPECT_GT(agree_wide.load(), agree_narrow.load());
}

}  // namespace
}  // namespace veil::hybrid
