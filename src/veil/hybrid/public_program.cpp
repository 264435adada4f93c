#include "veil/hybrid/public_program.hpp"

#include <cmath>
#include <cstring>
#include <sstream>

#include "veil/common/error.hpp"
#include "veil/math/primes.hpp"
#include "veil/mpc/truncate.hpp"

namespace veil::hybrid {

namespace {

constexpr char kMagic[8] = {'V', 'E', 'I', 'L', 'H', 'P', 'U', 'B'};
// 2: the logits' bound (the last op's output_bound) follows the ops.
// 3: the share ring's second prime (0: none) follows the first.
// 4: a linear op's convolution shape ends with its depthwise flag (u8).
constexpr std::uint32_t kFormatVersion = 4;
// Scale exponents stay within +-kScaleLimit and so do the differences the online stage
// rescales by (a shift of 2^60 or more does not fit a residue below 2^61).
constexpr int kScaleLimit = 60;

// --- writing ---

void put_i32(ByteWriter& w, int v) { w.u32(static_cast<std::uint32_t>(v)); }

void put_shape(ByteWriter& w, const nn::Shape& s) {
  put_i32(w, s.c);
  put_i32(w, s.h);
  put_i32(w, s.w);
}

void put_doubles(ByteWriter& w, const std::vector<double>& v) {
  w.u32(static_cast<std::uint32_t>(v.size()));
  for (double x : v) w.f64(x);
}

// --- reading: every count bounded by a limit and by the bytes left ---

int get_i32(ByteReader& r) { return static_cast<int>(static_cast<std::int32_t>(r.u32())); }

std::size_t get_count(ByteReader& r, std::size_t max, std::size_t min_bytes, const std::string& what) {
  const std::uint32_t n = r.u32();
  VEIL_CHECK_IO(n <= max, "public program: " << what << ": " << n << " entries exceed the limit of " << max);
  VEIL_CHECK_IO(std::uint64_t{n} * min_bytes <= r.remaining(),
                "public program: " << what << ": " << n << " entries do not fit the " << r.remaining()
                                   << " bytes left");
  return n;
}

// Dimensions up to 2^16 each and 2^24 elements, as the protocols' shapes.
nn::Shape get_shape(ByteReader& r, const std::string& what) {
  nn::Shape s;
  s.c = get_i32(r);
  s.h = get_i32(r);
  s.w = get_i32(r);
  VEIL_CHECK_IO(s.within_limits(),
                "public program: " << what << ": bad shape " << s.c << "x" << s.h << "x" << s.w);
  return s;
}

std::vector<double> get_doubles(ByteReader& r, std::size_t max, const std::string& what) {
  std::vector<double> v(get_count(r, max, 8, what));
  for (double& x : v) {
    x = r.f64();
    VEIL_CHECK_IO(std::isfinite(x), "public program: " << what << ": non-finite value");
  }
  return v;
}

int get_scale(ByteReader& r, const std::string& what) {
  const int s = get_i32(r);
  VEIL_CHECK_IO(
      s >= -kScaleLimit && s <= kScaleLimit,
      "public program: " << what << " 2^" << s << " is out of range (|exponent| <= " << kScaleLimit << ")");
  return s;
}

std::string op_label(std::size_t k, const Op& op) { return "op " + std::to_string(k) + " '" + op.name + "'"; }

// What a consumer of op j (or of the input, j < 0) reads: its element count and scale.
struct Value {
  std::int64_t size = 0;
  int bits = 0;
};

// Geometry of the published convolution against the op's rows and cols.
void check_he_shape(const Op& op, const std::string& label) {
  const bfv::ConvShape& s = op.he_shape;
  VEIL_CHECK_IO(s.in_channels >= 1 && s.height >= 1 && s.width >= 1 && s.out_channels >= 1 &&
                    s.kernel_h >= 1 && s.kernel_w >= 1 && s.stride >= 1 && s.pad >= 0 &&
                    s.in_channels <= 65536 && s.height <= 65536 && s.width <= 65536 &&
                    s.out_channels <= 65536 && s.kernel_h <= 65536 && s.kernel_w <= 65536 &&
                    s.stride <= 65536 && s.pad <= 65536,
                "public program: " << label << ": bad convolution shape");
  VEIL_CHECK_IO(!s.depthwise || s.in_channels == s.out_channels,
                "public program: " << label << ": a depthwise convolution with " << s.in_channels
                                   << " input and " << s.out_channels << " output channels");
  const std::int64_t hp = std::int64_t{s.height} + 2 * s.pad, wp = std::int64_t{s.width} + 2 * s.pad;
  VEIL_CHECK_IO(s.kernel_h <= hp && s.kernel_w <= wp,
                "public program: " << label << ": kernel larger than the padded input");
  const std::int64_t out_h = (hp - s.kernel_h) / s.stride + 1, out_w = (wp - s.kernel_w) / s.stride + 1;
  VEIL_CHECK_IO(std::int64_t{s.in_channels} * s.height * s.width == op.linear.cols &&
                    std::int64_t{s.out_channels} * out_h * out_w == op.linear.rows,
                "public program: " << label << ": the convolution " << s.in_channels << "x" << s.height << "x"
                                   << s.width << " -> " << s.out_channels << "x" << out_h << "x" << out_w
                                   << " does not match the layer's " << op.linear.cols << " -> "
                                   << op.linear.rows);
}

Op read_op(ByteReader& r, std::size_t k, const std::vector<Value>& values, const Value& input) {
  Op op;
  const std::uint8_t kind = r.u8();
  VEIL_CHECK_IO(kind <= 2, "public program: op " << k << ": unknown kind " << int{kind});
  op.kind = kind == 0 ? Op::Kind::kLinear : kind == 1 ? Op::Kind::kPoly : Op::Kind::kAdd;
  op.name = r.str(kMaxPublicName);
  const std::string label = op_label(k, op);
  op.in = get_shape(r, label + " input shape");
  op.out = get_shape(r, label + " output shape");
  op.inputs.resize(get_count(r, kMaxOpInputs, 4, label + " inputs"));
  VEIL_CHECK_IO(!op.inputs.empty(), "public program: " << label << " reads no value");
  VEIL_CHECK_IO(op.kind == Op::Kind::kAdd ? op.inputs.size() >= 2 : op.inputs.size() == 1,
                "public program: " << label << " reads " << op.inputs.size() << " values");
  for (int& j : op.inputs) {
    j = get_i32(r);
    VEIL_CHECK_IO(
        j >= -1 && j < static_cast<std::int64_t>(k),
        "public program: " << label << " reads op " << j
                           << (j >= 0 ? ", which does not come before it" : ", which does not exist"));
  }
  auto value = [&](int j) { return j < 0 ? input : values[static_cast<std::size_t>(j)]; };
  op.in_bits = get_scale(r, label + " input scale");
  op.out_bits = get_scale(r, label + " output scale");
  const Value in = value(op.inputs.front());
  switch (op.kind) {
    case Op::Kind::kLinear: {
      auto& q = op.linear;
      q.rows = static_cast<int>(r.u32());
      q.cols = static_cast<int>(r.u32());
      q.weight_bits = get_i32(r);
      const std::uint8_t truncate = r.u8(), spatial = r.u8();
      VEIL_CHECK_IO(truncate <= 1 && spatial <= 1, "public program: " << label << ": bad flag");
      q.truncate = truncate == 1;
      op.spatial = spatial == 1;
      op.stride_y = get_i32(r);
      op.stride_x = get_i32(r);
      auto& s = op.he_shape;
      for (int* f : {&s.in_channels, &s.height, &s.width, &s.out_channels, &s.kernel_h, &s.kernel_w,
                     &s.stride, &s.pad})
        *f = get_i32(r);
      const std::uint8_t depthwise = r.u8();
      VEIL_CHECK_IO(depthwise <= 1, "public program: " << label << ": bad depthwise flag");
      s.depthwise = depthwise == 1;
      VEIL_CHECK_IO(q.rows == op.out.size() && q.cols == op.in.size() && q.cols == in.size,
                    "public program: " << label << ": " << q.cols << " -> " << q.rows
                                       << " does not match its " << in.size << " inputs and shapes "
                                       << op.in.size() << " -> " << op.out.size());
      VEIL_CHECK_IO(op.stride_y >= 1 && op.stride_x >= 1 && op.stride_y <= 65536 && op.stride_x <= 65536,
                    "public program: " << label << ": bad strides");
      VEIL_CHECK_IO(
          q.weight_bits >= 0 && q.weight_bits <= 31,
          "public program: " << label << ": weight scale 2^" << q.weight_bits << " is out of range");
      const int product = op.in_bits + q.weight_bits;
      VEIL_CHECK_IO(product <= kScaleLimit && std::abs(product - op.out_bits) <= kScaleLimit,
                    "public program: " << label << ": products at 2^" << product
                                       << " cannot be rescaled to 2^" << op.out_bits);
      VEIL_CHECK_IO(q.truncate || op.out_bits == product,
                    "public program: " << label << ": an untruncated layer keeps its products' scale");
      check_he_shape(op, label);
      break;
    }
    case Op::Kind::kPoly: {
      op.coefficients = get_doubles(r, 5, label + " coefficients");
      VEIL_CHECK_IO(!op.coefficients.empty(), "public program: " << label << " has no coefficients");
      for (double c : op.coefficients)
        VEIL_CHECK_IO(std::fabs(c) < 1e6,
                      "public program: " << label << ": coefficient " << c << " is too large");
      auto& p = op.poly;
      p.in_bits = get_scale(r, label + " polynomial input scale");
      p.power_bits = get_scale(r, label + " power scale");
      p.sum_bits = get_scale(r, label + " sum scale");
      p.out_bits = get_scale(r, label + " polynomial output scale");
      VEIL_CHECK_IO(op.in.size() == in.size && op.out.size() == in.size,
                    "public program: " << label << ": shapes " << op.in.size() << " -> " << op.out.size()
                                       << " do not match its " << in.size << " inputs");
      // mpc::poly_activation's conditions, checked here so that a hostile program is
      // refused at load rather than in the middle of an inference.
      VEIL_CHECK_IO(p.in_bits == op.in_bits && p.out_bits == op.out_bits && p.power_bits >= 1 &&
                        p.power_bits <= p.in_bits && p.sum_bits >= p.in_bits && p.out_bits <= p.sum_bits &&
                        p.out_bits >= 0 && p.sum_bits - p.power_bits <= 30,
                    "public program: " << label << ": inconsistent activation scales");
      break;
    }
    case Op::Kind::kAdd:
      VEIL_CHECK_IO(op.in.size() == op.out.size(), "public program: " << label << ": shapes differ");
      for (int j : op.inputs) {
        const Value v = value(j);
        VEIL_CHECK_IO(v.size == op.out.size() && std::abs(v.bits - op.out_bits) <= kScaleLimit,
                      "public program: " << label << ": input " << j << " has " << v.size << " values at 2^"
                                         << v.bits << ", the sum " << op.out.size() << " at 2^"
                                         << op.out_bits);
      }
      break;
  }
  // Linear and polynomial ops read their input at its producer's scale.
  VEIL_CHECK_IO(op.kind == Op::Kind::kAdd || op.in_bits == in.bits,
                "public program: " << label << " reads its input at 2^" << op.in_bits << ", it is held at 2^"
                                   << in.bits);
  return op;
}

}  // namespace

Program public_view(const Program& program) {
  // Field by field (as save_public_program writes them), never a copy of the whole
  // program: a second copy of a large model's weights would exist for a moment (a
  // PreAct-ResNet-18's program holds 482 million of them, 3.9 GB).
  Program p;
  p.name = program.name;
  p.input = program.input;
  p.mean = program.mean;
  p.std = program.std;
  p.classes = program.classes;
  p.prime = program.prime;
  p.prime2 = program.prime2;
  p.value_precision = program.value_precision;
  p.uniform_frac_bits = program.uniform_frac_bits;
  p.sigma = program.sigma;
  p.value_bits = program.value_bits;
  p.input_bits = program.input_bits;
  p.ring_choice = program.ring_choice;
  p.ops.reserve(program.ops.size());
  for (const Op& src : program.ops) {
    Op op;
    op.kind = src.kind;
    op.name = src.name;
    op.in = src.in;
    op.out = src.out;
    op.inputs = src.inputs;
    // Of the weights only the shape and the scales, which the client lays out and
    // truncates by.
    op.linear.rows = src.linear.rows;
    op.linear.cols = src.linear.cols;
    op.linear.weight_bits = src.linear.weight_bits;
    op.linear.truncate = src.linear.truncate;
    op.spatial = src.spatial;
    op.stride_y = src.stride_y;
    op.stride_x = src.stride_x;
    op.he_shape = src.he_shape;
    op.coefficients = src.coefficients;
    op.poly = src.poly;
    op.in_bits = src.in_bits;
    op.out_bits = src.out_bits;
    // The logits' bound stays: the client sees the logits anyway, and it lets the client
    // tell a wrapped result from an answer (online.hpp, kWrapFactor).
    op.output_bound = &src == &program.ops.back() ? src.output_bound : 0;
    p.ops.push_back(std::move(op));
  }
  return p;
}

bool is_public(const Program& program) {
  for (const Op& op : program.ops) {
    const auto& q = op.linear;
    if (!q.row_ptr.empty() || !q.col.empty() || !q.weight.empty() || !q.bias.empty() || q.max_row_l1 != 0 ||
        op.weight_precision != 0 || (op.output_bound != 0 && &op != &program.ops.back()))
      return false;
  }
  return true;
}

Bytes save_public_program(const Program& program) {
  ByteWriter w;
  w.raw(kMagic, sizeof kMagic);
  w.u32(kFormatVersion);
  w.str(program.name);
  put_shape(w, program.input);
  put_doubles(w, program.mean);
  put_doubles(w, program.std);
  w.u32(static_cast<std::uint32_t>(program.classes.size()));
  for (const auto& c : program.classes) w.str(c);
  w.u64(program.prime);
  w.u64(program.prime2);
  for (int v : {program.value_precision, program.uniform_frac_bits, program.sigma, program.value_bits,
                program.input_bits})
    put_i32(w, v);
  w.u32(static_cast<std::uint32_t>(program.ops.size()));
  // Only the fields public_view keeps are written.
  for (const Op& op : program.ops) {
    w.u8(op.kind == Op::Kind::kLinear ? 0 : op.kind == Op::Kind::kPoly ? 1 : 2);
    w.str(op.name);
    put_shape(w, op.in);
    put_shape(w, op.out);
    w.u32(static_cast<std::uint32_t>(op.inputs.size()));
    for (int j : op.inputs) put_i32(w, j);
    put_i32(w, op.in_bits);
    put_i32(w, op.out_bits);
    if (op.kind == Op::Kind::kLinear) {
      const auto& q = op.linear;
      w.u32(static_cast<std::uint32_t>(q.rows));
      w.u32(static_cast<std::uint32_t>(q.cols));
      put_i32(w, q.weight_bits);
      w.u8(q.truncate ? 1 : 0);
      w.u8(op.spatial ? 1 : 0);
      put_i32(w, op.stride_y);
      put_i32(w, op.stride_x);
      const auto& s = op.he_shape;
      for (int v :
           {s.in_channels, s.height, s.width, s.out_channels, s.kernel_h, s.kernel_w, s.stride, s.pad})
        put_i32(w, v);
      w.u8(s.depthwise ? 1 : 0);
    } else if (op.kind == Op::Kind::kPoly) {
      put_doubles(w, op.coefficients);
      for (int v : {op.poly.in_bits, op.poly.power_bits, op.poly.sum_bits, op.poly.out_bits}) put_i32(w, v);
    }
  }
  w.f64(program.ops.empty() ? 0.0 : program.ops.back().output_bound);
  return w.take();
}

Program load_public_program(std::span<const std::uint8_t> data) {
  VEIL_CHECK_IO(data.size() <= kMaxPublicProgramBytes,
                "public program: " << data.size() << " bytes exceed the limit of " << kMaxPublicProgramBytes);
  ByteReader r(data);
  char magic[sizeof kMagic];
  VEIL_CHECK_IO(r.remaining() >= sizeof magic + 4, "public program: truncated header");
  r.raw(magic, sizeof magic);
  VEIL_CHECK_IO(std::memcmp(magic, kMagic, sizeof kMagic) == 0,
                "public program: bad magic (not a public program)");
  const std::uint32_t version = r.u32();
  VEIL_CHECK_IO(version == kFormatVersion,
                "public program: format version " << version << ", this build reads " << kFormatVersion);
  Program p;
  try {
    p.name = r.str(kMaxPublicName);
    p.input = get_shape(r, "input shape");
    p.mean = get_doubles(r, kMaxPublicChannels, "mean");
    p.std = get_doubles(r, kMaxPublicChannels, "std");
    VEIL_CHECK_IO(p.mean.size() == p.std.size() &&
                      (p.mean.empty() || p.mean.size() == static_cast<std::size_t>(p.input.c)),
                  "public program: " << p.mean.size() << " means and " << p.std.size() << " deviations for "
                                     << p.input.c << " input channels");
    for (double s : p.std) VEIL_CHECK_IO(s != 0, "public program: zero standard deviation");
    p.classes.resize(get_count(r, kMaxPublicClasses, 4, "classes"));
    for (auto& c : p.classes) c = r.str(kMaxPublicName);
    p.prime = r.u64();
    VEIL_CHECK_IO(p.prime > (u64{1} << 20) && p.prime < (u64{1} << 61) && math::is_prime(p.prime),
                  "public program: share field modulus " << p.prime << " is not a prime in (2^20, 2^61)");
    p.prime2 = r.u64();
    VEIL_CHECK_IO(p.prime2 == 0 || (p.prime2 > (u64{1} << 20) && p.prime2 < (u64{1} << 61) &&
                                    p.prime2 != p.prime && math::is_prime(p.prime2)),
                  "public program: the share ring's second prime " << p.prime2
                                                                   << " is not a prime in (2^20, 2^61) "
                                                                      "distinct from the first");
    p.value_precision = get_i32(r);
    p.uniform_frac_bits = get_i32(r);
    p.sigma = get_i32(r);
    p.value_bits = get_i32(r);
    p.input_bits = get_scale(r, "input scale");
    VEIL_CHECK_IO(p.value_precision >= 2 && p.value_precision <= 19 && p.uniform_frac_bits >= 0 &&
                      p.uniform_frac_bits <= 30 && p.sigma >= 20 && p.sigma <= 60,
                  "public program: precision " << p.value_precision << ", uniform scale "
                                               << p.uniform_frac_bits << " or sigma " << p.sigma
                                               << " out of range");
    const int vb = std::min(kMaxValueBits, mpc::max_truncation_value_bits(p.field(), p.sigma));
    VEIL_CHECK_IO(p.value_bits == vb, "public program: truncation bound 2^"
                                          << p.value_bits << ", the field and sigma give 2^" << vb);
    // An op takes at least 45 bytes (kind, name, two shapes, one input, two scales).
    const std::size_t n = get_count(r, kMaxPublicOps, 45, "ops");
    VEIL_CHECK_IO(n >= 1, "public program: no ops");
    std::vector<Value> values;
    const Value input{p.input.size(), p.input_bits};
    for (std::size_t k = 0; k < n; ++k) {
      p.ops.push_back(read_op(r, k, values, input));
      values.push_back(Value{p.ops.back().out.size(), p.ops.back().out_bits});
    }
    VEIL_CHECK_IO(r.remaining() >= 8, "public program: truncated (no logit bound)");
    const double bound = r.f64();
    // 0: unknown (the client then checks against the field's guarantee alone).
    VEIL_CHECK_IO(std::isfinite(bound) && bound >= 0 && bound < 0x1p60,
                  "public program: logit bound " << bound << " is not a finite value in [0, 2^60)");
    p.ops.back().output_bound = bound;
    r.expect_end();
  } catch (const std::runtime_error& e) {
    const std::string what = e.what();
    if (what.find("public program") != std::string::npos) throw;
    VEIL_CHECK_IO(false, "public program: " << what);
  }
  for (std::size_t k = 0; k + 1 < p.ops.size(); ++k)
    VEIL_CHECK_IO(
        p.ops[k].kind != Op::Kind::kLinear || p.ops[k].linear.truncate,
        "public program: " << op_label(k, p.ops[k]) << " skips its truncation; only the last op may");
  VEIL_CHECK_IO(
      p.classes.empty() || p.classes.size() == static_cast<std::size_t>(p.num_outputs()),
      "public program: " << p.classes.size() << " class names for " << p.num_outputs() << " outputs");
  VEIL_CHECK_IO(p.output_bits() >= 0 && p.output_bits() <= kScaleLimit,
                "public program: output scale 2^" << p.output_bits() << " is out of range");
  return p;
}

}  // namespace veil::hybrid
