// A terminal progress bar for long runs (encrypted evaluation of a test set takes
// minutes to hours). Thread-safe: workers call tick() concurrently.
//
// On a terminal it redraws one line in place, at most 10 times a second:
//   encrypted eval [########............]  45/100  45%  2.31 it/s  ETA 0:24  acc 99.1%
// Elsewhere (a log file, CI) animation would fill the log with carriage returns, so it
// prints a plain line each time another 10% completes, and a last one from finish().
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdio>
#include <mutex>
#include <string>

namespace veil::report {

class Progress {
 public:
  // total 0 means unknown: count and rate only (non-terminal output then reports every
  // 10 seconds). Animation is used when `out` is a terminal and TERM is not "dumb".
  Progress(std::string label, std::size_t total, std::FILE* out = stderr);
  // Same, with the terminal decision forced (tests, --no-progress style options).
  Progress(std::string label, std::size_t total, std::FILE* out, bool animated);
  ~Progress();
  Progress(const Progress&) = delete;
  Progress& operator=(const Progress&) = delete;

  void tick(std::size_t n = 1);
  // Text after the counters, e.g. the running accuracy; shown from the next update.
  void set_suffix(std::string suffix);
  // Draws the final state and ends the line. Idempotent; the destructor calls it.
  void finish();

  std::size_t count() const;
  bool animated() const { return animated_; }

 private:
  using Clock = std::chrono::steady_clock;
  void draw_locked(bool final);
  std::string status_locked(double elapsed_s) const;

  mutable std::mutex mu_;
  std::string label_, suffix_;
  std::size_t total_, count_ = 0;
  std::FILE* out_;
  bool animated_, finished_ = false;
  Clock::time_point start_, last_draw_;
  int last_decile_ = 0;       // non-terminal: tenths of total already reported
  double last_report_s_ = 0;  // non-terminal with unknown total
};

// "0:07", "12:34", "1:02:03".
std::string format_duration(double seconds);

}  // namespace veil::report
