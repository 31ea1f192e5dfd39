// The result type shared by the control-plane responders (arp.h, icmp.h, ndp.h): each takes a
// received frame with its FrameInfo and, when a reply is due, writes a complete frame into a
// caller-provided buffer. `out` may be the request's own buffer (an in-place reply in the same
// mbuf): every responder reads what it needs from the request before writing.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <span>

#include "dataplane/packet/wire.h"
#include "turn/net/socket_address.h"

namespace turnpike::dataplane::packet {

enum class ReplyVerdict : uint8_t {
  kReply,      // `length` bytes written to `out`: send them
  kIgnored,    // well-formed but not something this responder answers (e.g. an ARP reply)
  kNotForUs,   // asks about an address that is not ours
  kMalformed,  // fails the protocol's validity checks (length, checksum, hop limit ...)
  kNoRoom,     // `out` is too small
};

struct Reply {
  ReplyVerdict verdict = ReplyVerdict::kIgnored;
  size_t length = 0;

  static Reply Of(ReplyVerdict v) { return {v, 0}; }
};

inline bool IsOurAddress(std::span<const IpAddress> ours, const IpAddress& ip) {
  return std::find(ours.begin(), ours.end(), ip) != ours.end();
}

// The shortest frame we send: 60 bytes, 64 with an 802.1Q tag, so that a bridge that strips the
// tag still forwards a legal frame (IEEE 802.1Q pads on insertion but not on removal).
inline size_t MinFrameSize(bool tagged) { return tagged ? kMinFrameSize + 4 : kMinFrameSize; }

// Zero-fills a frame of `length` bytes up to MinFrameSize; returns the padded length.
inline size_t PadFrame(std::span<uint8_t> out, size_t length, bool tagged) {
  const size_t min = MinFrameSize(tagged);
  if (length >= min) {
    return length;
  }
  std::memset(out.data() + length, 0, min - length);
  return min;
}

// A frame of `length` bytes plus padding fits in `out`.
inline bool FitsPadded(std::span<const uint8_t> out, size_t length, bool tagged) {
  return out.size() >= std::max(length, MinFrameSize(tagged));
}

}  // namespace turnpike::dataplane::packet
