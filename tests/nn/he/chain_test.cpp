// The encrypted side runs chains only for now: a lowered residual network is refused by
// the planner and the packer with the message the importer used to give, while a chain
// (explicit edges or the empty default) is accepted.
#include <gtest/gtest.h>

#include "nn/nn_test_util.hpp"
#include "veil/nn/he/packing.hpp"
#include "veil/nn/he/planner.hpp"
#include "veil/nn/passes.hpp"

namespace veil::nn {
namespace {

Network residual_network() {
  std::mt19937_64 rng(5);
  Graph g = test::empty_graph({1, 4, 4});
  const int c = test::add_conv(g, -1, 1, 3, 1, 1, 1, rng);
  Node add;
  add.op = OpKind::kAdd;
  add.name = "/layer1/Add";
  add.inputs = {c, -1};
  const int a = add_node(g, add);
  g.output = test::add_gemm(g, test::add_simple(g, OpKind::kFlatten, a, "flat"), 2, rng);
  return lower(g);
}

TEST(RequireChain, ResidualNetworkIsRefusedByPlannerAndPacker) {
  const Network net = residual_network();
  for (int which = 0; which < 2; ++which) {
    try {
      if (which == 0)
        make_plan(net, PlanOptions{});
      else
        pack_network(net, 1024, false);
      ADD_FAILURE() << "accepted a residual network (" << which << ")";
    } catch (const std::invalid_argument& e) {
      const std::string m = e.what();
      EXPECT_NE(m.find("/layer1/Add"), std::string::npos) << m;
      EXPECT_NE(m.find("residual connections are not supported by the non-interactive encrypted mode"),
                std::string::npos)
          << m;
    }
  }
}

TEST(RequireChain, ChainsPassWithOrWithoutExplicitEdges) {
  std::mt19937_64 rng(6);
  Graph g = test::empty_graph({1, 4, 4});
  const int c = test::add_conv(g, -1, 2, 3, 1, 1, 1, rng);
  const int p = test::add_poly(g, c, {0, 0, 1});
  g.output = test::add_gemm(g, test::add_simple(g, OpKind::kFlatten, p, "flat"), 2, rng);
  Network net = lower(g);
  EXPECT_TRUE(net.is_chain());
  EXPECT_NO_THROW(require_chain(net));
  for (Stage& s : net.stages) s.inputs.clear();  // the chain default
  EXPECT_TRUE(net.is_chain());
  EXPECT_NO_THROW(require_chain(net));
  net.stages[1].inputs = {-1};  // the polynomial reads the input: a branch, not a chain
  EXPECT_FALSE(net.is_chain());
  EXPECT_THROW(require_chain(net), std::invalid_argument);
}

}  // namespace
}  // namespace veil::nn
