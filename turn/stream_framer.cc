// STUN / ChannelData framing over TCP and TLS; see stream_framer.h for the wire layout.
#include "turn/stream_framer.h"

namespace turnpike::turn {
namespace {

constexpr uint8_t kCookieBytes[4] = {0x21, 0x12, 0xA4, 0x42};

const char* ErrorText(FramingError error) {
  switch (error) {
    case FramingError::kNone:
      return "no error";
    case FramingError::kBadFirstByte:
      return "stream framing: neither STUN nor ChannelData";
    case FramingError::kBadStunLength:
      return "stream framing: STUN length not a multiple of 4";
    case FramingError::kBadCookie:
      return "stream framing: STUN message without magic cookie";
    case FramingError::kTooLarge:
      return "stream framing: message longer than the maximum";
  }
  return "stream framing: error";
}

}  // namespace

size_t WriteStreamChannelData(std::span<uint8_t> out, uint16_t channel,
                              std::span<const uint8_t> payload) {
  if (payload.size() > 0xFFFF) {
    return 0;
  }
  const size_t pad = StreamChannelDataPadding(payload.size());
  const size_t total = stun::kChannelDataHeaderSize + payload.size() + pad;
  if (out.size() < total) {
    return 0;
  }
  stun::WriteChannelDataHeader(out.data(), channel, static_cast<uint16_t>(payload.size()));
  if (!payload.empty()) {
    std::memcpy(out.data() + stun::kChannelDataHeaderSize, payload.data(), payload.size());
  }
  std::memset(out.data() + stun::kChannelDataHeaderSize + payload.size(), 0, pad);
  return total;
}

StreamFramer::StreamFramer(size_t max_message)
    : capacity_(max_message < kMinMaxMessage ? kMinMaxMessage : max_message) {
  buffer_ = std::make_unique<uint8_t[]>(capacity_);
}

bool StreamFramer::SizeFrame(const uint8_t* head, Frame* frame) {
  const size_t length = (size_t{head[2]} << 8) | head[3];
  if (head[0] <= 0x03) {
    // RFC 8489 6: the length excludes the 20-byte header and its last two bits are zero.
    if ((length & 3) != 0) {
      error_ = FramingError::kBadStunLength;
      return false;
    }
    *frame = {stun::kHeaderSize + length, stun::kHeaderSize + length, false};
  } else if ((head[0] & 0xC0) == 0x40) {
    // RFC 8656 12.5: over a stream the payload is padded to a multiple of 4 bytes.
    const size_t bytes = stun::kChannelDataHeaderSize + length;
    *frame = {bytes + StreamChannelDataPadding(length), bytes, true};
  } else {
    error_ = FramingError::kBadFirstByte;
    return false;
  }
  if (frame->total > capacity_) {
    error_ = FramingError::kTooLarge;
    return false;
  }
  return true;
}

bool StreamFramer::CheckComplete(const uint8_t* message, const Frame& frame) {
  if (!frame.channel_data && std::memcmp(message + 4, kCookieBytes, 4) != 0) {
    error_ = FramingError::kBadCookie;
    return false;
  }
  return true;
}

absl::Status StreamFramer::Fail(FramingError error) {
  buffered_ = 0;
  return absl::InvalidArgumentError(ErrorText(error));
}

}  // namespace turnpike::turn
