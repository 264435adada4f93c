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

}  // namespace
}  // namespace veil::hybrid
