// Names of the counter reasons, used as Prometheus label values (snake_case, stable: dashboards
// and alerts depend on them). The order of each table follows its enum in turn/counters.h.

#include "turn/counters.h"

namespace turnpike::turn {
namespace {

constexpr std::string_view kDropReasonNames[] = {
    "malformed",     "bad_fingerprint", "unexpected_class", "no_allocation", "unknown_channel",
    "no_permission", "peer_denied",     "bandwidth",        "tx_full",       "too_big",
    "rate_limited",  "amplification",   "node_bandwidth",
};
static_assert(std::size(kDropReasonNames) == static_cast<size_t>(DropReason::kCount));

constexpr std::string_view kAuthFailureNames[] = {
    "missing_credentials", "bad_integrity", "unknown_user",
    "expired_username",    "stale_nonce",   "bad_request",
};
static_assert(std::size(kAuthFailureNames) == static_cast<size_t>(AuthFailure::kCount));

constexpr std::string_view kAllocateResultNames[] = {
    "success", "auth_required", "bad_request", "mismatch", "unsupported_transport",
    "quota",   "no_ports",      "forbidden",   "other",
};
static_assert(std::size(kAllocateResultNames) == static_cast<size_t>(AllocateResult::kCount));

template <typename Enum, size_t N>
std::string_view NameOf(const std::string_view (&names)[N], Enum e) {
  auto i = static_cast<size_t>(e);
  return i < N ? names[i] : std::string_view("unknown");
}

}  // namespace

std::string_view DropReasonName(DropReason r) { return NameOf(kDropReasonNames, r); }
std::string_view AuthFailureName(AuthFailure r) { return NameOf(kAuthFailureNames, r); }
std::string_view AllocateResultName(AllocateResult r) { return NameOf(kAllocateResultNames, r); }

}  // namespace turnpike::turn
