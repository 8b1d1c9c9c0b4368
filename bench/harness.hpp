// A plain timing harness: samples, medians, "metric value unit" lines.
#pragma once

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <string>
#include <vector>

namespace herd_bench {

using clock = std::chrono::steady_clock;

inline double micros_since(clock::time_point start) {
  return std::chrono::duration<double, std::micro>(clock::now() - start).count();
}

inline double median(std::vector<double> samples) {
  if (samples.empty()) return 0;
  std::sort(samples.begin(), samples.end());
  return samples[samples.size() / 2];
}

inline void report(const std::string& metric, double value, const char* unit) {
  std::printf("%s %.4g %s\n", metric.c_str(), value, unit);
  std::fflush(stdout);
}

}  // namespace herd_bench
