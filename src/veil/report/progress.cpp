#include "veil/report/progress.hpp"

#include <sys/ioctl.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <utility>

namespace veil::report {

namespace {

bool is_terminal(std::FILE* f) {
  if (f == nullptr || !isatty(fileno(f))) return false;
  const char* term = std::getenv("TERM");
  return term == nullptr || std::strcmp(term, "dumb") != 0;
}

int terminal_columns(std::FILE* f) {
  winsize ws{};
  if (ioctl(fileno(f), TIOCGWINSZ, &ws) == 0 && ws.ws_col > 0) return ws.ws_col;
  return 80;
}

std::string format_rate(double per_second) {
  char buf[32];
  if (!(per_second > 0) || !std::isfinite(per_second)) return "- it/s";
  // Encrypted inference is often slower than one item a second: seconds per item reads
  // better there.
  if (per_second >= 1)
    std::snprintf(buf, sizeof buf, "%.3g it/s", per_second);
  else
    std::snprintf(buf, sizeof buf, "%.3g s/it", 1 / per_second);
  return buf;
}

}  // namespace

std::string format_duration(double seconds) {
  if (!std::isfinite(seconds) || seconds < 0) return "?";
  const long s = std::lround(seconds);
  char buf[32];
  if (s >= 3600)
    std::snprintf(buf, sizeof buf, "%ld:%02ld:%02ld", s / 3600, s / 60 % 60, s % 60);
  else
    std::snprintf(buf, sizeof buf, "%ld:%02ld", s / 60, s % 60);
  return buf;
}

Progress::Progress(std::string label, std::size_t total, std::FILE* out)
    : Progress(std::move(label), total, out, is_terminal(out)) {}

Progress::Progress(std::string label, std::size_t total, std::FILE* out, bool animated)
    : label_(std::move(label)),
      total_(total),
      out_(out),
      animated_(animated),
      start_(Clock::now()),
      last_draw_(start_) {
  std::lock_guard lock(mu_);
  if (animated_) draw_locked(false);
}

Progress::~Progress() { finish(); }

std::size_t Progress::count() const {
  std::lock_guard lock(mu_);
  return count_;
}

void Progress::set_suffix(std::string suffix) {
  std::lock_guard lock(mu_);
  suffix_ = std::move(suffix);
}

void Progress::tick(std::size_t n) {
  std::lock_guard lock(mu_);
  if (finished_) return;
  count_ += n;
  const auto now = Clock::now();
  if (animated_) {
    if (now - last_draw_ >= std::chrono::milliseconds(100) || count_ == total_) draw_locked(false);
    return;
  }
  if (total_ > 0) {
    const int decile = static_cast<int>(std::min<std::size_t>(count_, total_) * 10 / total_);
    // The 100% line is finish()'s, with the total time and the final suffix.
    if (decile > last_decile_ && decile < 10) {
      last_decile_ = decile;
      draw_locked(false);
    }
  } else {
    const double elapsed = std::chrono::duration<double>(now - start_).count();
    if (elapsed - last_report_s_ >= 10) {
      last_report_s_ = elapsed;
      draw_locked(false);
    }
  }
}

void Progress::finish() {
  std::lock_guard lock(mu_);
  if (finished_) return;
  finished_ = true;
  draw_locked(true);
}

std::string Progress::status_locked(double elapsed_s) const {
  char buf[64];
  std::string s;
  if (total_ > 0) {
    const double frac = std::min(1.0, static_cast<double>(count_) / total_);
    std::snprintf(buf, sizeof buf, "%zu/%zu  %3d%%", count_, total_,
                  static_cast<int>(std::floor(frac * 100)));
  } else {
    std::snprintf(buf, sizeof buf, "%zu", count_);
  }
  s += buf;
  const double rate = elapsed_s > 0 ? count_ / elapsed_s : 0;
  s += "  " + format_rate(rate);
  if (finished_) {
    s += "  in " + format_duration(elapsed_s);
  } else if (total_ > 0 && rate > 0 && count_ < total_) {
    s += "  ETA " + format_duration((total_ - count_) / rate);
  }
  if (!suffix_.empty()) s += "  " + suffix_;
  return s;
}

void Progress::draw_locked(bool final) {
  const auto now = Clock::now();
  last_draw_ = now;
  const double elapsed = std::chrono::duration<double>(now - start_).count();
  const std::string status = status_locked(elapsed);
  std::string line;
  if (animated_) {
    line = "\r" + label_;
    if (total_ > 0) {
      // The bar takes what the terminal has left, between 10 and 30 cells.
      const int room = terminal_columns(out_) - static_cast<int>(label_.size() + status.size()) - 5;
      const int cells = std::min(30, room);
      if (cells >= 10) {
        const double frac = std::min(1.0, static_cast<double>(count_) / total_);
        const int done = static_cast<int>(frac * cells);
        line += " [" + std::string(done, '#') + std::string(cells - done, '.') + "]";
      }
    }
    line += " " + status + "\033[K";  // erase what a longer previous line left behind
    if (final) line += "\n";
  } else {
    line = label_ + ": " + status + "\n";
  }
  std::fputs(line.c_str(), out_);
  std::fflush(out_);
}

}  // namespace veil::report
