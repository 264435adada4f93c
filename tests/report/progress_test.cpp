#include "veil/report/progress.hpp"

#include <gtest/gtest.h>

#include <cstdio>
#include <thread>
#include <vector>

namespace veil::report {
namespace {

std::string contents(std::FILE* f) {
  std::fflush(f);
  std::rewind(f);
  std::string s;
  char buf[4096];
  std::size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, f)) > 0) s.append(buf, n);
  return s;
}

std::vector<std::string> lines(const std::string& s) {
  std::vector<std::string> out;
  std::size_t start = 0;
  for (std::size_t nl; (nl = s.find('\n', start)) != std::string::npos; start = nl + 1)
    out.push_back(s.substr(start, nl - start));
  return out;
}

TEST(Progress, LogOutputEveryTenPercentThenFinal) {
  std::FILE* f = std::tmpfile();
  ASSERT_NE(f, nullptr);
  {
    Progress p("plain eval", 20, f, /*animated=*/false);
    for (int i = 0; i < 20; ++i) {
      if (i == 10) p.set_suffix("acc 90.0%");
      p.tick();
    }
    EXPECT_EQ(p.count(), 20u);
  }  // destructor finishes
  const auto ls = lines(contents(f));
  ASSERT_EQ(ls.size(), 10u);  // 10%..90% and the final line
  EXPECT_EQ(ls[0].rfind("plain eval: 2/20", 0), 0u) << ls[0];
  EXPECT_NE(ls[0].find("ETA"), std::string::npos) << ls[0];
  EXPECT_NE(ls.back().find("20/20  100%"), std::string::npos) << ls.back();
  EXPECT_NE(ls.back().find("in 0:00"), std::string::npos) << ls.back();
  EXPECT_NE(ls.back().find("acc 90.0%"), std::string::npos) << ls.back();
  EXPECT_EQ(contents(f).find('\r'), std::string::npos);
  std::fclose(f);
}

TEST(Progress, AnimatedRedrawsInPlaceAndEndsTheLine) {
  std::FILE* f = std::tmpfile();
  ASSERT_NE(f, nullptr);
  Progress p("encrypted eval", 4, f, /*animated=*/true);
  p.tick(4);  // reaching the total always draws
  p.finish();
  p.finish();  // idempotent
  p.tick();    // ignored after finish
  const std::string s = contents(f);
  EXPECT_EQ(s.front(), '\r');
  EXPECT_EQ(s.back(), '\n');
  EXPECT_EQ(std::count(s.begin(), s.end(), '\n'), 1);
  EXPECT_NE(s.find("[##############################]"), std::string::npos) << s;
  EXPECT_NE(s.find("4/4  100%"), std::string::npos) << s;
  std::fclose(f);
}

TEST(Progress, ConcurrentTicksAllCount) {
  std::FILE* f = std::tmpfile();
  ASSERT_NE(f, nullptr);
  Progress p("threads", 4000, f, false);
  std::vector<std::thread> ts;
  for (int t = 0; t < 4; ++t)
    ts.emplace_back([&] {
      for (int i = 0; i < 1000; ++i) p.tick();
    });
  for (auto& t : ts) t.join();
  EXPECT_EQ(p.count(), 4000u);
  p.finish();
  EXPECT_EQ(lines(contents(f)).size(), 10u);
  std::fclose(f);
}

TEST(Progress, UnknownTotalAndDurations) {
  std::FILE* f = std::tmpfile();
  ASSERT_NE(f, nullptr);
  {
    Progress p("scan", 0, f, false);
    p.tick(7);
  }
  const auto ls = lines(contents(f));
  ASSERT_EQ(ls.size(), 1u);
  EXPECT_EQ(ls[0].rfind("scan: 7  ", 0), 0u) << ls[0];
  std::fclose(f);
  EXPECT_EQ(format_duration(7), "0:07");
  EXPECT_EQ(format_duration(754), "12:34");
  EXPECT_EQ(format_duration(3723), "1:02:03");
  EXPECT_EQ(format_duration(-1), "?");
}

}  // namespace
}  // namespace veil::report
