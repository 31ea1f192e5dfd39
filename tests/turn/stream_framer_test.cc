// Tests for STUN / ChannelData framing over TCP and TLS (turn/stream_framer.h): every split of
// a byte stream yields the same messages, padding is consumed, and bad streams are refused.
#include "turn/stream_framer.h"

#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "tests/data/rfc5769.h"

namespace turnpike::turn {
namespace {

using Bytes = std::vector<uint8_t>;

struct Yielded {
  Bytes bytes;
  bool channel_data;
  bool operator==(const Yielded&) const = default;
};

// RFC 5769 2.1 sample request (with MESSAGE-INTEGRITY and FINGERPRINT).
const Bytes kRfc5769Request(testdata::kRfc5769SampleRequest.begin(),
                            testdata::kRfc5769SampleRequest.end());

Bytes Stun(uint16_t type, size_t body_len, uint8_t fill) {
  Bytes b(stun::kHeaderSize + body_len, fill);
  b[0] = static_cast<uint8_t>(type >> 8);
  b[1] = static_cast<uint8_t>(type);
  b[2] = static_cast<uint8_t>(body_len >> 8);
  b[3] = static_cast<uint8_t>(body_len);
  b[4] = 0x21;
  b[5] = 0x12;
  b[6] = 0xA4;
  b[7] = 0x42;
  return b;
}

// ChannelData as a stream carries it: padded.
Bytes StreamChannelData(uint16_t channel, size_t payload_len, uint8_t fill) {
  Bytes payload(payload_len, fill);
  Bytes out(4 + payload_len + 3);
  size_t n = WriteStreamChannelData(out, channel, payload);
  EXPECT_NE(n, 0u);
  out.resize(n);
  return out;
}

// The message a ChannelData stream frame yields: no padding.
Yielded Unpadded(const Bytes& frame) {
  size_t len = (size_t{frame[2]} << 8) | frame[3];
  return {Bytes(frame.begin(), frame.begin() + 4 + len), true};
}

// Feeds `stream` cut at `cuts` (ascending offsets) and collects what comes out.
absl::Status FeedSplit(StreamFramer& framer, const Bytes& stream, const std::vector<size_t>& cuts,
                       std::vector<Yielded>* out) {
  size_t start = 0;
  auto collect = [out](std::span<const uint8_t> msg, bool cd) {
    out->push_back({Bytes(msg.begin(), msg.end()), cd});
  };
  for (size_t cut : cuts) {
    absl::Status s = framer.Feed(std::span(stream).subspan(start, cut - start), collect);
    if (!s.ok()) {
      return s;
    }
    start = cut;
  }
  return framer.Feed(std::span(stream).subspan(start), collect);
}

// A mixed sequence and the messages it must yield.
struct Sequence {
  Bytes stream;
  std::vector<Yielded> expected;
  void AddStun(const Bytes& msg) {
    stream.insert(stream.end(), msg.begin(), msg.end());
    expected.push_back({msg, false});
  }
  void AddChannelData(uint16_t channel, size_t len, uint8_t fill) {
    Bytes frame = StreamChannelData(channel, len, fill);
    stream.insert(stream.end(), frame.begin(), frame.end());
    expected.push_back(Unpadded(frame));
  }
};

Sequence Mixed() {
  Sequence s;
  s.AddStun(kRfc5769Request);
  s.AddChannelData(0x4000, 0, 0x11);    // empty payload: header only
  s.AddChannelData(0x4001, 1, 0x22);    // 3 bytes of padding
  s.AddChannelData(0x4FFF, 2, 0x33);    // 2
  s.AddChannelData(0x7FFF, 3, 0x44);    // 1, RFC 5766 channel range
  s.AddChannelData(0x5000, 4, 0x55);    // 0
  s.AddStun(Stun(0x0001, 0, 0));        // header-only Binding
  s.AddChannelData(0x4002, 161, 0x66);  // padding with STUN-looking bytes following
  s.AddStun(Stun(0x0113, 8, 0x03));     // error response
  return s;
}

TEST(StreamChannelDataPadding, RoundsUpToFourBytes) {
  EXPECT_EQ(StreamChannelDataPadding(0), 0u);
  EXPECT_EQ(StreamChannelDataPadding(1), 3u);
  EXPECT_EQ(StreamChannelDataPadding(2), 2u);
  EXPECT_EQ(StreamChannelDataPadding(3), 1u);
  EXPECT_EQ(StreamChannelDataPadding(4), 0u);
  EXPECT_EQ(StreamChannelDataPadding(65535), 1u);
}

TEST(WriteStreamChannelData, WritesHeaderPayloadAndZeroPadding) {
  const Bytes payload = {1, 2, 3, 4, 5};
  Bytes out(12, 0xEE);
  ASSERT_EQ(WriteStreamChannelData(out, 0x4123, payload), 12u);
  EXPECT_EQ(out, (Bytes{0x41, 0x23, 0x00, 0x05, 1, 2, 3, 4, 5, 0, 0, 0}));
  Bytes small(11);
  EXPECT_EQ(WriteStreamChannelData(small, 0x4123, payload), 0u);
}

TEST(StreamFramer, YieldsWholeChunkOfMixedMessagesInPlace) {
  Sequence s = Mixed();
  StreamFramer framer;
  std::vector<Yielded> got;
  std::vector<const uint8_t*> where;
  ASSERT_TRUE(framer
                  .Feed(s.stream,
                        [&](std::span<const uint8_t> msg, bool cd) {
                          got.push_back({Bytes(msg.begin(), msg.end()), cd});
                          where.push_back(msg.data());
                        })
                  .ok());
  EXPECT_EQ(got, s.expected);
  EXPECT_EQ(framer.buffered(), 0u);
  // Zero-copy: every message was yielded as a view into the chunk itself.
  for (const uint8_t* p : where) {
    EXPECT_GE(p, s.stream.data());
    EXPECT_LT(p, s.stream.data() + s.stream.size());
  }
}

TEST(StreamFramer, EverySingleSplitPositionYieldsTheSameMessages) {
  Sequence s = Mixed();
  for (size_t cut = 0; cut <= s.stream.size(); ++cut) {
    StreamFramer framer;
    std::vector<Yielded> got;
    ASSERT_TRUE(FeedSplit(framer, s.stream, {cut}, &got).ok()) << "cut " << cut;
    EXPECT_EQ(got, s.expected) << "cut " << cut;
    EXPECT_EQ(framer.buffered(), 0u);
  }
}

TEST(StreamFramer, EveryPairOfSplitPositionsYieldsTheSameMessages) {
  Sequence s;
  s.AddChannelData(0x4001, 5, 0x22);
  s.AddStun(Stun(0x0003, 12, 0x01));
  s.AddChannelData(0x4002, 2, 0x33);
  for (size_t a = 0; a <= s.stream.size(); ++a) {
    for (size_t b = a; b <= s.stream.size(); ++b) {
      StreamFramer framer;
      std::vector<Yielded> got;
      ASSERT_TRUE(FeedSplit(framer, s.stream, {a, b}, &got).ok());
      ASSERT_EQ(got, s.expected) << "cuts " << a << " " << b;
    }
  }
}

TEST(StreamFramer, ByteAtATimeYieldsTheSameMessages) {
  Sequence s = Mixed();
  std::vector<size_t> cuts;
  for (size_t i = 1; i < s.stream.size(); ++i) {
    cuts.push_back(i);
  }
  StreamFramer framer;
  std::vector<Yielded> got;
  ASSERT_TRUE(FeedSplit(framer, s.stream, cuts, &got).ok());
  EXPECT_EQ(got, s.expected);
}

TEST(StreamFramer, RandomSplitsOfManyMessagesRoundTripExactBytes) {
  std::mt19937 rng(7);
  Sequence s;
  for (int i = 0; i < 500; ++i) {
    if (rng() % 3 == 0) {
      s.AddStun(Stun(0x0001 + (rng() % 3) * 0x100, (rng() % 40) * 4, static_cast<uint8_t>(i)));
    } else {
      s.AddChannelData(0x4000 + rng() % 0x4000, rng() % 300, static_cast<uint8_t>(i));
    }
  }
  for (int round = 0; round < 20; ++round) {
    std::vector<size_t> cuts;
    size_t pos = 0;
    while (true) {
      pos += 1 + rng() % 700;
      if (pos >= s.stream.size()) {
        break;
      }
      cuts.push_back(pos);
    }
    StreamFramer framer;
    std::vector<Yielded> got;
    ASSERT_TRUE(FeedSplit(framer, s.stream, cuts, &got).ok());
    ASSERT_EQ(got, s.expected) << "round " << round;
  }
}

TEST(StreamFramer, PaddingIsConsumedNotYieldedAndNotTakenForTheNextMessage) {
  // Payload of 1 byte, then 3 padding bytes that would read as a STUN/ChannelData start if the
  // framer did not skip them, then a real message.
  Bytes stream = {0x40, 0x00, 0x00, 0x01, 0xAB, 0x40, 0x00, 0x00};
  Bytes next = StreamChannelData(0x4001, 4, 0xCD);
  stream.insert(stream.end(), next.begin(), next.end());
  StreamFramer framer;
  std::vector<Yielded> got;
  ASSERT_TRUE(FeedSplit(framer, stream, {5}, &got).ok());
  ASSERT_EQ(got.size(), 2u);
  EXPECT_EQ(got[0], (Yielded{{0x40, 0x00, 0x00, 0x01, 0xAB}, true}));
  EXPECT_EQ(got[1], Unpadded(next));
  // Message complete but its padding not yet arrived: nothing is yielded until it has, and the
  // bytes wait in the buffer.
  StreamFramer partial;
  got.clear();
  ASSERT_TRUE(FeedSplit(partial, Bytes(stream.begin(), stream.begin() + 6), {}, &got).ok());
  EXPECT_TRUE(got.empty());
  EXPECT_EQ(partial.buffered(), 6u);
}

TEST(StreamFramer, ReportsPartialMessageAsBuffered) {
  StreamFramer framer;
  std::vector<Yielded> got;
  Bytes msg = Stun(0x0001, 8, 0);
  ASSERT_TRUE(FeedSplit(framer, Bytes(msg.begin(), msg.begin() + 3), {}, &got).ok());
  EXPECT_EQ(framer.buffered(), 3u);
  ASSERT_TRUE(FeedSplit(framer, Bytes(msg.begin() + 3, msg.end()), {}, &got).ok());
  EXPECT_EQ(framer.buffered(), 0u);
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].bytes, msg);
}

TEST(StreamFramer, RefusesOversizedLengthWithoutWaitingForTheBytes) {
  StreamFramer framer(1024);
  std::vector<Yielded> got;
  // ChannelData of 1021 bytes pads to 1024 + 4: one over.
  Bytes header = {0x40, 0x00, 0x03, 0xFD};
  absl::Status s = FeedSplit(framer, header, {}, &got);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(framer.error(), FramingError::kTooLarge);

  StreamFramer exact(1024);
  Bytes fits = StreamChannelData(0x4000, 1020, 1);
  ASSERT_EQ(fits.size(), 1024u);
  ASSERT_TRUE(FeedSplit(exact, fits, {2, 700}, &got).ok());
  EXPECT_EQ(got.size(), 1u);

  StreamFramer stun_limit(1024);
  Bytes big = {0x00, 0x01, 0x04, 0x00};  // 20 + 1024
  EXPECT_FALSE(FeedSplit(stun_limit, big, {}, &got).ok());
  EXPECT_EQ(stun_limit.error(), FramingError::kTooLarge);
}

TEST(StreamFramer, DefaultLimitTakesTheLargestMessages) {
  StreamFramer framer;
  std::vector<Yielded> got;
  Bytes cd = StreamChannelData(0x4000, 65535, 9);
  Bytes stun_max = Stun(0x0001, 65532, 0);
  Bytes stream = cd;
  stream.insert(stream.end(), stun_max.begin(), stun_max.end());
  ASSERT_TRUE(FeedSplit(framer, stream, {1000, 65539, 70000}, &got).ok());
  ASSERT_EQ(got.size(), 2u);
  EXPECT_EQ(got[0].bytes.size(), 4u + 65535);
  EXPECT_EQ(got[1].bytes, stun_max);
}

TEST(StreamFramer, RefusesGarbageFirstBytes) {
  for (int first : {0x04, 0x16, 0x3F, 0x80, 0xC0, 0xFF}) {
    StreamFramer framer;
    std::vector<Yielded> got;
    Bytes stream = Stun(0x0001, 0, 0);
    stream.push_back(static_cast<uint8_t>(first));
    stream.insert(stream.end(), {0x00, 0x00, 0x00, 0x00, 0x00});
    absl::Status s = FeedSplit(framer, stream, {}, &got);
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << first;
    EXPECT_EQ(framer.error(), FramingError::kBadFirstByte) << first;
    // The message before the garbage was still delivered.
    EXPECT_EQ(got.size(), 1u) << first;
  }
}

TEST(StreamFramer, RefusesStunLengthNotMultipleOfFourAndMissingCookie) {
  StreamFramer framer;
  std::vector<Yielded> got;
  EXPECT_FALSE(FeedSplit(framer, Bytes{0x00, 0x01, 0x00, 0x06}, {}, &got).ok());
  EXPECT_EQ(framer.error(), FramingError::kBadStunLength);

  StreamFramer no_cookie;
  Bytes msg = Stun(0x0001, 4, 0);
  msg[5] = 0x13;
  EXPECT_FALSE(FeedSplit(no_cookie, msg, {10}, &got).ok());
  EXPECT_EQ(no_cookie.error(), FramingError::kBadCookie);
  EXPECT_TRUE(got.empty());
}

TEST(StreamFramer, StaysFailedAfterAnError) {
  StreamFramer framer;
  std::vector<Yielded> got;
  ASSERT_FALSE(FeedSplit(framer, Bytes{0xFF, 0, 0, 0}, {}, &got).ok());
  absl::Status again = FeedSplit(framer, Stun(0x0001, 0, 0), {}, &got);
  EXPECT_EQ(again.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(got.empty());
  EXPECT_EQ(framer.buffered(), 0u);
}

TEST(StreamFramer, EmptyChunksAreHarmless) {
  StreamFramer framer;
  std::vector<Yielded> got;
  Bytes msg = StreamChannelData(0x4000, 3, 1);
  ASSERT_TRUE(FeedSplit(framer, msg, {0, 0, 2, 2, 7, 7}, &got).ok());
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0], Unpadded(msg));
}

TEST(StreamFramer, TinyMaximumIsRaisedToAStunHeader) {
  StreamFramer framer(0);
  EXPECT_EQ(framer.max_message(), stun::kHeaderSize);
  std::vector<Yielded> got;
  ASSERT_TRUE(FeedSplit(framer, Stun(0x0001, 0, 0), {1}, &got).ok());
  EXPECT_EQ(got.size(), 1u);
}

}  // namespace
}  // namespace turnpike::turn
