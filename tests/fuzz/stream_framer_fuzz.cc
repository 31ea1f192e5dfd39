// libFuzzer target for STUN / ChannelData framing over TCP and TLS (turn/stream_framer.h).
//
// Input: one control byte, then the byte stream a client would send. The control byte picks
// the framer's maximum message size and how the stream is cut into chunks (one byte at a
// time, small, medium or large pieces from a generator seeded by the input itself). The stream
// is framed twice, whole and cut, and the two runs must agree message for message and on the
// error. Every yielded message must be what it claims (a STUN message with its header's length
// and cookie, a ChannelData message the UDP parser accepts), the messages plus padding must be
// exactly the consumed bytes of the stream in order, and the consumed plus buffered bytes must
// account for the whole stream. Any mismatch aborts.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <span>
#include <vector>

#include "turn/stream_framer.h"
#include "turn/stun/message.h"
#include "tests/fuzz/fuzz_check.h"

namespace {

namespace stun = turnpike::stun;
using turnpike::turn::FramingError;
using turnpike::turn::StreamChannelDataPadding;
using turnpike::turn::StreamFramer;
using turnpike::turn::WriteStreamChannelData;

struct Message {
  size_t offset;  // in the stream, for messages checked against it
  size_t size;
  bool channel_data;
};

// Checks one yielded message against the stream at `*offset` and advances past it (padding
// included). Returns the stream bytes it occupied.
size_t CheckMessage(std::span<const uint8_t> stream, size_t offset,
                    std::span<const uint8_t> msg, bool channel_data) {
  FUZZ_CHECK(msg.size() >= 4);
  FUZZ_CHECK(offset + msg.size() <= stream.size());
  FUZZ_CHECK(std::memcmp(stream.data() + offset, msg.data(), msg.size()) == 0);
  const size_t length = (size_t{msg[2]} << 8) | msg[3];
  if (channel_data) {
    FUZZ_CHECK((msg[0] & 0xC0) == 0x40);
    FUZZ_CHECK(msg.size() == 4 + length);
    auto cd = stun::ParseChannelData(msg);
    FUZZ_CHECK(cd.has_value());
    FUZZ_CHECK(cd->payload.size() == length);
    FUZZ_CHECK(cd->channel >= stun::kMinChannel && cd->channel <= stun::kMaxChannel);
    const size_t pad = StreamChannelDataPadding(length);
    FUZZ_CHECK((msg.size() + pad) % 4 == 0);
    FUZZ_CHECK(offset + msg.size() + pad <= stream.size());
    // The writer reproduces the message (the sender's padding bytes are not checked: RFC 8489
    // says receivers ignore them).
    static uint8_t out[4 + 65535 + 3];
    FUZZ_CHECK(WriteStreamChannelData(out, cd->channel, cd->payload) == msg.size() + pad);
    FUZZ_CHECK(std::memcmp(out, msg.data(), msg.size()) == 0);
    return msg.size() + pad;
  }
  FUZZ_CHECK(msg[0] <= 0x03);
  FUZZ_CHECK(msg.size() == stun::kHeaderSize + length);
  FUZZ_CHECK(length % 4 == 0);
  FUZZ_CHECK(stun::LooksLikeStun(msg));
  if (msg.size() <= 0xFFFF) {  // MessageView takes at most a UDP datagram's worth
    stun::ParseError err;
    auto view = stun::MessageView::Parse(msg, &err);
    FUZZ_CHECK(view.has_value() || (err != stun::ParseError::kTooShort &&
                                    err != stun::ParseError::kNotStun &&
                                    err != stun::ParseError::kBadLength));
  }
  return msg.size();
}

struct Run {
  std::vector<Message> messages;
  bool ok = true;
  FramingError error = FramingError::kNone;
  size_t consumed = 0;  // stream bytes taken by yielded messages and their padding
  size_t buffered = 0;
};

uint64_t NextRandom(uint64_t* state) {  // xorshift64*
  uint64_t x = *state;
  x ^= x >> 12;
  x ^= x << 25;
  x ^= x >> 27;
  *state = x;
  return x * 0x2545F4914F6CDD1Dull;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) {
    return 0;
  }
  const uint8_t control = data[0];
  std::span<const uint8_t> stream(data + 1, size - 1);
  static constexpr size_t kMaxSizes[4] = {StreamFramer::kDefaultMaxMessage, 1024, 64, 20};
  const size_t max_message = kMaxSizes[control & 3];

  // Whole stream in one chunk: complete messages must come out in place (zero-copy).
  Run whole;
  {
    StreamFramer framer(max_message);
    auto status = framer.Feed(stream, [&](std::span<const uint8_t> msg, bool cd) {
      FUZZ_CHECK(msg.data() == stream.data() + whole.consumed);
      whole.consumed += CheckMessage(stream, whole.consumed, msg, cd);
      whole.messages.push_back({static_cast<size_t>(msg.data() - stream.data()), msg.size(), cd});
    });
    whole.ok = status.ok();
    whole.error = framer.error();
    whole.buffered = framer.buffered();
    FUZZ_CHECK(whole.ok == (whole.error == FramingError::kNone));
    if (whole.ok) {
      FUZZ_CHECK(whole.consumed + whole.buffered == stream.size());
    } else {
      FUZZ_CHECK(whole.consumed <= stream.size());
      FUZZ_CHECK(framer.buffered() == 0);
      // Failed stays failed.
      bool called = false;
      FUZZ_CHECK(!framer.Feed(stream, [&](std::span<const uint8_t>, bool) { called = true; })
                      .ok());
      FUZZ_CHECK(!called);
    }
    FUZZ_CHECK(whole.buffered <= framer.max_message());
  }

  // The same stream cut into chunks.
  Run cut;
  {
    StreamFramer framer(max_message);
    uint64_t state = 0x9E3779B97F4A7C15ull ^ (uint64_t{control} << 32) ^ size;
    for (size_t i = 0; i < size && i < 16; ++i) {
      state = state * 31 + data[i];
    }
    if (state == 0) {
      state = 1;
    }
    const size_t limits[4] = {1, 8, 256, stream.size() + 1};
    const size_t limit = limits[(control >> 2) & 3];
    size_t pos = 0;
    while (pos < stream.size() && cut.ok) {
      size_t n = 1 + NextRandom(&state) % limit;
      if ((control & 0x10) != 0 && NextRandom(&state) % 8 == 0) {
        n = 0;  // empty reads happen too
      }
      n = std::min(n, stream.size() - pos);
      auto status = framer.Feed(stream.subspan(pos, n), [&](std::span<const uint8_t> msg, bool cd) {
        const size_t offset = cut.consumed;
        cut.consumed += CheckMessage(stream, offset, msg, cd);
        cut.messages.push_back({offset, msg.size(), cd});
      });
      pos += n;
      cut.ok = status.ok();
      if (cut.ok) {
        // Everything fed so far is either yielded, padding, or held for the next message.
        FUZZ_CHECK(cut.consumed + framer.buffered() == pos);
        FUZZ_CHECK(framer.buffered() <= framer.max_message());
      }
    }
    cut.error = framer.error();
    cut.buffered = framer.buffered();
  }

  FUZZ_CHECK(cut.ok == whole.ok);
  FUZZ_CHECK(cut.error == whole.error);
  FUZZ_CHECK(cut.consumed == whole.consumed);
  FUZZ_CHECK(cut.buffered == whole.buffered);
  FUZZ_CHECK(cut.messages.size() == whole.messages.size());
  for (size_t i = 0; i < cut.messages.size(); ++i) {
    FUZZ_CHECK(cut.messages[i].offset == whole.messages[i].offset);
    FUZZ_CHECK(cut.messages[i].size == whole.messages[i].size);
    FUZZ_CHECK(cut.messages[i].channel_data == whole.messages[i].channel_data);
  }
  return 0;
}
