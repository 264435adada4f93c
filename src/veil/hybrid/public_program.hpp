// What the client of the hybrid mode learns about the model: the program with every weight
// and bias removed (Delphi, Mishra et al., USENIX Security 2020, section 3: the client
// learns the architecture, never the weights). It is all the client's roles need:
// PreprocessClient lays out its masks by each linear op's rows, cols and he_shape;
// run_client reads the scales, the polynomial activations (public, mpc/activation.hpp)
// and the op graph; he_parameters() reads the prime and the he_shapes.
//
// Removed: QuantLinear weight, bias, col and row_ptr, and what is derived from them
// (max_row_l1, Op::weight_precision, Op::output_bound: a measured or propagated bound,
// finer than the scale exponents that already follow from it).
//
// Saved form (little-endian; docs/protocol.md):
//   magic "VEILHPUB" | u32 version 3 | str name | shape input (u32 c, h, w) |
//   u32 n, f64 mean[n] | u32 n, f64 std[n] | u32 n, str classes[n] |
//   u64 prime | u64 prime2 (0: one prime) | i32 value_precision, uniform_frac_bits, sigma, value_bits,
//   input_bits | u32 op count | per op: u8 kind (0 linear, 1 poly, 2 add) | str name | shape in, out |
//     u32 n, i32 inputs[n] | i32 in_bits, out_bits | then by kind:
//     linear: u32 rows, cols | i32 weight_bits | u8 truncate, spatial | i32 stride_y,
//             stride_x | he_shape: i32 in_channels, height, width, out_channels, kernel_h,
//             kernel_w, stride, pad
//     poly:   u32 n, f64 coefficients[n] | i32 in_bits, power_bits, sum_bits, out_bits
//     add:    nothing
//   f64 the logits' bound
// A str is u32 length + bytes.
#pragma once

#include <cstdint>
#include <span>

#include "veil/common/bytes.hpp"
#include "veil/hybrid/program.hpp"

namespace veil::hybrid {

// Bounds the loader enforces (a program beyond them is refused).
inline constexpr std::size_t kMaxPublicOps = 4096;
inline constexpr std::size_t kMaxOpInputs = 256;  // producers of one Add
inline constexpr std::size_t kMaxPublicName = 256;
inline constexpr std::size_t kMaxPublicClasses = 65536;
inline constexpr std::size_t kMaxPublicChannels = 4096;  // mean / std entries
inline constexpr std::size_t kMaxPublicProgramBytes = std::size_t{1} << 24;

// The program without weights, biases and what is derived from them.
Program public_view(const Program& program);
// True when the program holds no weight, bias or weight-derived field (public_view's form).
bool is_public(const Program& program);

// Saves public_view(program): nothing secret is ever written, whatever is passed.
Bytes save_public_program(const Program& program);

// Loads and validates a public program from untrusted bytes: the header, every count
// bounded (and by the bytes left) before anything is allocated, every op reading only
// earlier ops (or the input), sizes consistent along every edge, rows / cols matching the
// shapes and the published convolution, scales within the field, the prime and the
// truncation bound consistent. Throws std::runtime_error naming the first problem
// ("public program: op 3 'fc2' reads op 5, which comes later").
Program load_public_program(std::span<const std::uint8_t> data);

}  // namespace veil::hybrid
