// Default locations of the evaluation data sets. Resolved here, in the command, rather than
// in data/: the data library loads what it is given, and only the program knows which
// checkout it belongs to.
#pragma once

#include <string>
#include <string_view>

namespace veil::cli {

// Where scripts/setup.sh leaves each data set; the first of these that exists, else the
// first (so an error message names where it was expected):
//   mnist:         $VEIL_DATA_DIR/mnist, <repo>/data/mnist
//   fashion-mnist: $VEIL_DATA_DIR/fashion-mnist, <repo>/data/fashion-mnist,
//                  /usr/share/datasets/fashion-mnist (Debian dataset-fashion-mnist)
//   cifar10:       $VEIL_DATA_DIR/cifar10, <repo>/data/cifar10 (unpacked .bin),
//                  <repo>/../shared/data/cifar10 (the shared .bin.xz copy)
// VEIL_DATA_DIR is the override setup.sh itself honours. `repo_root` empty means the
// checkout the `veil` binary was built from (compile definition VEIL_CHECKOUT_DIR),
// never an absolute folder of one machine.
std::string default_data_dir(std::string_view dataset, const std::string& repo_root = "");

}  // namespace veil::cli
