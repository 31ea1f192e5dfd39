// Framing of STUN and ChannelData messages over a byte stream: TURN over TCP and TLS
// (RFC 8656 12.5, RFC 8489 6.2.2). The stream transport thread owns one StreamFramer per client
// connection, feeds it whatever recv()/SSL_read() returned (split anywhere, several messages per
// chunk) and hands each complete message to the engine exactly as if it were a UDP datagram.
//
// Over a stream a message is found from its first four bytes:
//
//   STUN (first byte 0x00-0x03; RFC 7983 demultiplexing), total = 20 + Message Length
//     0                   1                   2                   3
//     0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//    |0 0|     STUN Message Type     |  Message Length (mult. of 4)  |
//    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//    |                   Magic Cookie 0x2112A442                     |
//    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//    |          Transaction ID (96 bits), attributes ...             |
//
//   ChannelData (first byte 0x40-0x7F; channels 0x4000-0x7FFF, see stun::kMaxChannel),
//   total = 4 + Length rounded up to a multiple of 4 (RFC 8656 12.5: over TCP and TLS the
//   padding MUST be sent and is consumed by the receiver; over UDP it is optional)
//    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//    |         Channel Number        |            Length             |
//    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//    /                       Application Data                        /
//    /                               +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//    |                               |     padding (0-3 bytes)       |
//    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//
// Anything else cannot be re-synchronised (a stream has no message boundaries of its own), so
// it is a fatal framing error and the caller closes the connection: a first byte outside those
// two ranges, a STUN length that is not a multiple of 4 or a wrong magic cookie, or a message
// longer than the configured maximum. A declared length is never allocated: the framer owns
// one buffer of `max_message` bytes, sized at construction, and copies only the one message
// that straddles chunks into it. Messages wholly inside a chunk are yielded in place.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <span>

#include "absl/status/status.h"
#include "turn/stun/message.h"

namespace turnpike::turn {

// Why a stream was refused; the transport counts these per reason.
enum class FramingError : uint8_t {
  kNone = 0,
  kBadFirstByte,   // neither STUN (0x00-0x03) nor ChannelData (0x40-0x7F)
  kBadStunLength,  // STUN length not a multiple of 4 (RFC 8489 6)
  kBadCookie,      // STUN message without the magic cookie
  kTooLarge,       // longer than max_message
};

// Padding after a ChannelData payload of `payload` bytes on a stream (RFC 8656 12.5).
constexpr size_t StreamChannelDataPadding(size_t payload) { return (4 - (payload & 3)) & 3; }

// Writes a ChannelData message for a stream into `out`: header, payload, zero padding.
// Returns the bytes written, or 0 when `out` is too small or the payload exceeds 65535 bytes.
size_t WriteStreamChannelData(std::span<uint8_t> out, uint16_t channel,
                              std::span<const uint8_t> payload);

class StreamFramer {
 public:
  // Largest STUN message (20-byte header, 16-bit length) plus a little; a padded ChannelData
  // message (at most 4 + 65535 + 1) fits too.
  static constexpr size_t kDefaultMaxMessage = 65535 + stun::kHeaderSize;
  // Smaller than a STUN header would make every STUN message a framing error.
  static constexpr size_t kMinMaxMessage = stun::kHeaderSize;

  // `max_message` counts a ChannelData message with its padding. Values below kMinMaxMessage
  // are raised to it.
  explicit StreamFramer(size_t max_message = kDefaultMaxMessage);
  StreamFramer(const StreamFramer&) = delete;
  StreamFramer& operator=(const StreamFramer&) = delete;

  // Consumes `chunk` and calls on_message(std::span<const uint8_t> message, bool is_channel_data)
  // for every message it completes, in stream order. A STUN message is yielded whole; a
  // ChannelData message as header + payload without the stream padding, i.e. exactly what a UDP
  // datagram would carry. The span points into `chunk` or into the framer's buffer and is valid
  // only during the call; on_message must not call Feed on the same framer.
  //
  // Returns InvalidArgument on a framing error (see error()); the framer then stays failed and
  // every later Feed returns the same error without calling on_message. Messages completed
  // before the bad bytes are still delivered.
  template <typename F>
  absl::Status Feed(std::span<const uint8_t> chunk, F&& on_message);

  FramingError error() const { return error_; }
  // Bytes of a message held over from earlier chunks (0 at a message boundary).
  size_t buffered() const { return buffered_; }
  size_t max_message() const { return capacity_; }

 private:
  struct Frame {
    size_t total;       // bytes the message occupies on the stream, padding included
    size_t length;      // bytes to yield
    bool channel_data;
  };

  // Sizes the message starting at `head` (at least 4 bytes). False on a framing error.
  bool SizeFrame(const uint8_t* head, Frame* frame);
  // Checks what can only be checked once the whole message is there (the STUN cookie).
  bool CheckComplete(const uint8_t* message, const Frame& frame);
  absl::Status Fail(FramingError error);

  std::unique_ptr<uint8_t[]> buffer_;
  size_t capacity_;
  size_t buffered_ = 0;
  FramingError error_ = FramingError::kNone;
};

template <typename F>
absl::Status StreamFramer::Feed(std::span<const uint8_t> chunk, F&& on_message) {
  if (error_ != FramingError::kNone) {
    return Fail(error_);
  }
  const uint8_t* in = chunk.data();
  size_t left = chunk.size();

  // 1. Finish the message held over from earlier chunks. The buffer only ever holds the start of
  //    one message, so it never needs compacting and never holds more than capacity_ bytes.
  while (buffered_ > 0) {
    size_t want = stun::kChannelDataHeaderSize;
    Frame frame{};
    if (buffered_ >= want) {
      if (!SizeFrame(buffer_.get(), &frame)) {
        return Fail(error_);
      }
      want = frame.total;
    }
    if (buffered_ < want) {
      const size_t take = want - buffered_ < left ? want - buffered_ : left;
      std::memcpy(buffer_.get() + buffered_, in, take);
      buffered_ += take;
      in += take;
      left -= take;
      if (buffered_ < want) {
        return absl::OkStatus();  // chunk used up
      }
      continue;  // header complete: size the frame, or the frame is complete
    }
    if (!CheckComplete(buffer_.get(), frame)) {
      return Fail(error_);
    }
    buffered_ = 0;
    on_message(std::span<const uint8_t>(buffer_.get(), frame.length), frame.channel_data);
  }

  // 2. Messages wholly inside the chunk are yielded in place (zero-copy).
  while (left >= stun::kChannelDataHeaderSize) {
    Frame frame;
    if (!SizeFrame(in, &frame)) {
      return Fail(error_);
    }
    if (frame.total > left) {
      break;
    }
    if (!CheckComplete(in, frame)) {
      return Fail(error_);
    }
    on_message(std::span<const uint8_t>(in, frame.length), frame.channel_data);
    in += frame.total;
    left -= frame.total;
  }

  // 3. Keep the start of the next message. It is shorter than its frame (at most capacity_) or
  //    shorter than a header, so it fits.
  if (left > 0) {
    std::memcpy(buffer_.get(), in, left);
    buffered_ = left;
  }
  return absl::OkStatus();
}

}  // namespace turnpike::turn
