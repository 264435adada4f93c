#include "veil/cli/data_paths.hpp"

#include <cstdlib>
#include <filesystem>
#include <vector>

#include "veil/common/error.hpp"
#include "veil/data/dataset.hpp"

namespace veil::cli {

namespace fs = std::filesystem;

std::string default_data_dir(std::string_view dataset, const std::string& repo_root) {
  const std::string name = data::canonical_dataset_name(dataset);
  VEIL_REQUIRE(!name.empty(), "default_data_dir: no data set named");
  const fs::path repo = repo_root.empty() ? fs::path(VEIL_CHECKOUT_DIR) : fs::path(repo_root);
  std::vector<fs::path> candidates;
  if (const char* env = std::getenv("VEIL_DATA_DIR"); env && *env) candidates.push_back(fs::path(env) / name);
  candidates.push_back(repo / "data" / name);
  if (name == "fashion-mnist") candidates.emplace_back("/usr/share/datasets/fashion-mnist");
  if (name == "cifar10") candidates.push_back(repo / ".." / "shared" / "data" / "cifar10");
  for (const auto& c : candidates)
    if (fs::is_directory(c)) return c.lexically_normal().string();
  return candidates.front().lexically_normal().string();
}

std::vector<std::string> training_files(const std::string& dir) {
  std::vector<std::string> out;
  for (const char* f : {"train-images-idx3-ubyte", "train-images-idx3-ubyte.gz", "data_batch_1.bin",
                        "data_batch_1.bin.xz", "data_batch_1.bin.gz"})
    if (fs::is_regular_file(fs::path(dir) / f)) out.push_back((fs::path(dir) / f).string());
  return out;
}

}  // namespace veil::cli
