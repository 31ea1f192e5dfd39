// Log-linear latency histogram (HdrHistogram-like): 32 sub-buckets per power of two of
// nanoseconds, so any recorded value is reported within ~3%. Fixed size, no allocation when
// recording; one per traffic thread and direction, merged after the run.
#pragma once

#include <algorithm>
#include <array>
#include <bit>
#include <cstdint>

namespace turnpike::loadgen {

class LatencyHistogram {
 public:
  static constexpr int kSubBits = 5;
  static constexpr int kSub = 1 << kSubBits;                   // 32
  static constexpr int kBuckets = (64 - kSubBits + 1) * kSub;  // up to 2^64 ns

  static int Index(uint64_t ns) {
    if (ns < 2 * kSub) return static_cast<int>(ns);  // exact below 64 ns
    int shift = std::bit_width(ns) - 1 - kSubBits;   // >= 1
    return shift * kSub + static_cast<int>(ns >> shift);
  }
  // Midpoint of bucket `index`, in ns.
  static double Value(int index) {
    if (index < 2 * kSub) return index;
    int shift = index / kSub - 1;
    uint64_t low = static_cast<uint64_t>(index - shift * kSub) << shift;
    return static_cast<double>(low) + static_cast<double>(uint64_t{1} << shift) / 2.0;
  }

  void Record(int64_t ns) {
    uint64_t v = ns < 0 ? 0 : static_cast<uint64_t>(ns);
    ++counts_[Index(v)];
    ++total_;
    max_ = std::max(max_, v);
    sum_ += v;
  }
  void Merge(const LatencyHistogram& o) {
    for (int i = 0; i < kBuckets; ++i) counts_[i] += o.counts_[i];
    total_ += o.total_;
    max_ = std::max(max_, o.max_);
    sum_ += o.sum_;
  }
  uint64_t total() const { return total_; }
  uint64_t max_ns() const { return max_; }
  double mean_ns() const { return total_ ? static_cast<double>(sum_) / total_ : 0; }
  // Value at quantile q (0..1), ns; 0 when empty.
  double Quantile(double q) const {
    if (total_ == 0) return 0;
    uint64_t rank = static_cast<uint64_t>(q * static_cast<double>(total_));
    if (rank >= total_) rank = total_ - 1;
    uint64_t seen = 0;
    for (int i = 0; i < kBuckets; ++i) {
      seen += counts_[i];
      if (seen > rank) return std::min(Value(i), static_cast<double>(max_));
    }
    return static_cast<double>(max_);
  }

 private:
  std::array<uint64_t, kBuckets> counts_{};
  uint64_t total_ = 0;
  uint64_t max_ = 0;
  uint64_t sum_ = 0;
};

}  // namespace turnpike::loadgen
