// Tests for the counter reason names (turn/counters.h): they become Prometheus label values, so
// each must be unique, snake_case and in enum order.

#include <set>
#include <string>

#include "gtest/gtest.h"
#include "turn/counters.h"

namespace turnpike::turn {
namespace {

bool IsSnakeCase(std::string_view s) {
  if (s.empty() || s.front() == '_' || s.back() == '_') {
    return false;
  }
  for (char c : s) {
    if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_')) {
      return false;
    }
  }
  return true;
}

template <typename Enum>
void ExpectDistinctSnakeCase(std::string_view (*name)(Enum)) {
  std::set<std::string> seen;
  for (size_t i = 0; i < static_cast<size_t>(Enum::kCount); ++i) {
    std::string_view n = name(static_cast<Enum>(i));
    EXPECT_TRUE(IsSnakeCase(n)) << i << ": " << n;
    EXPECT_NE(n, "unknown") << i;
    EXPECT_TRUE(seen.insert(std::string(n)).second) << "duplicate " << n;
  }
  EXPECT_EQ(name(Enum::kCount), "unknown");
}

TEST(CounterNamesTest, AllNamesAreDistinctSnakeCase) {
  ExpectDistinctSnakeCase(&DropReasonName);
  ExpectDistinctSnakeCase(&AuthFailureName);
  ExpectDistinctSnakeCase(&AllocateResultName);
}

TEST(CounterNamesTest, NamesFollowEnumOrder) {
  EXPECT_EQ(DropReasonName(DropReason::kMalformed), "malformed");
  EXPECT_EQ(DropReasonName(DropReason::kBadFingerprint), "bad_fingerprint");
  EXPECT_EQ(DropReasonName(DropReason::kNoPermission), "no_permission");
  EXPECT_EQ(DropReasonName(DropReason::kPeerDenied), "peer_denied");
  EXPECT_EQ(DropReasonName(DropReason::kTooBig), "too_big");
  EXPECT_EQ(AuthFailureName(AuthFailure::kMissingCredentials), "missing_credentials");
  EXPECT_EQ(AuthFailureName(AuthFailure::kStaleNonce), "stale_nonce");
  EXPECT_EQ(AuthFailureName(AuthFailure::kBadRequest), "bad_request");
  EXPECT_EQ(AllocateResultName(AllocateResult::kSuccess), "success");
  EXPECT_EQ(AllocateResultName(AllocateResult::kUnsupportedTransport), "unsupported_transport");
  EXPECT_EQ(AllocateResultName(AllocateResult::kOther), "other");
}

}  // namespace
}  // namespace turnpike::turn
