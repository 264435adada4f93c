// Default locations of the evaluation data sets. Resolved here, in the command, rather than
// in data/: the data library loads what it is given, and only the program knows which
// checkout it belongs to.
#pragma once

#include <string>
#include <string_view>
#include <vector>

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

// The training images in data directory `dir`, as the files that exist there, in order of
// preference: MNIST-style train-images-idx3-ubyte[.gz], or CIFAR-10's data_batch_1.bin[.xz|.gz]
// (the first 10,000 training images; the shared copy is xz-compressed). Empty when there
// is none. The hybrid mode chooses its fixed-point scales on these, never on test images.
std::vector<std::string> training_files(const std::string& dir);

}  // namespace veil::cli
