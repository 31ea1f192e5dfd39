// Microbenchmarks for the STUN codec (turn/stun/message.h): what the TURN engine pays per
// request on the control-ish STUN path and per packet on the ChannelData relay path. Relay-path
// benchmarks for other pieces belong in their own files next to this one.
#include <benchmark/benchmark.h>

#include <array>
#include <cstdint>
#include <string_view>

#include "tests/data/rfc5769.h"
#include "turn/stun/message.h"

namespace turnpike::stun {
namespace {

constexpr TransactionId kTxid = {0x78, 0xad, 0x34, 0x33, 0xc6, 0xad,
                                 0x72, 0xc0, 0x29, 0xda, 0x41, 0x2e};

// RFC 5769 2.1: an ICE connectivity-check Binding request.
constexpr const auto& kBindingRequest = testdata::kRfc5769SampleRequest;

// A second-round Allocate as browsers send it: TURN REST username, realm, a nonce the size of
// ours, REQUESTED-TRANSPORT UDP, MESSAGE-INTEGRITY (or -SHA256) and FINGERPRINT.
struct AuthenticatedAllocate {
  std::array<uint8_t, 256> buf{};
  size_t size = 0;
  std::array<uint8_t, 16> key = LongTermKeyMd5("1735689600:alice", "turn.example.org", "pw");
  std::array<uint8_t, 32> key256 =
      LongTermKeySha256("1735689600:alice", "turn.example.org", "pw");

  explicit AuthenticatedAllocate(bool sha256) {
    MessageBuilder b(buf, Method::kAllocate, MessageClass::kRequest, kTxid.data());
    b.AddString(attr::kUsername, "1735689600:alice");
    b.AddString(attr::kRealm, "turn.example.org");
    b.AddString(attr::kNonce, "obMatJos2AAAB6761e0a1Yk3ZpQ0vWq8hT2mL");
    b.AddU32(attr::kRequestedTransport, 17u << 24);
    b.AddString(attr::kSoftware, "Chrome WebRTC");
    if (sha256) {
      b.AddPasswordAlgorithm(PasswordAlgorithm::kSha256);
      b.AddMessageIntegritySha256(key256);
    } else {
      b.AddMessageIntegrity(key);
    }
    b.AddFingerprint();
    size = b.ok() ? b.size() : 0;
  }
  std::span<const uint8_t> bytes() const { return {buf.data(), size}; }
};

void BM_ParseBindingRequest(benchmark::State& state) {
  for (auto _ : state) {
    ParseError error;
    auto view = MessageView::Parse(kBindingRequest, &error);
    benchmark::DoNotOptimize(view);
  }
  state.SetItemsProcessed(state.iterations());
  state.SetBytesProcessed(state.iterations() * kBindingRequest.size());
}
BENCHMARK(BM_ParseBindingRequest);

void BM_ParseAllocateWithAuth(benchmark::State& state) {
  AuthenticatedAllocate msg(/*sha256=*/false);
  if (msg.size == 0) {
    state.SkipWithError("build failed");
    return;
  }
  for (auto _ : state) {
    ParseError error;
    auto view = MessageView::Parse(msg.bytes(), &error);
    benchmark::DoNotOptimize(view);
  }
  state.SetItemsProcessed(state.iterations());
  state.SetBytesProcessed(state.iterations() * msg.size);
}
BENCHMARK(BM_ParseAllocateWithAuth);

void BM_BuildAllocateSuccess(benchmark::State& state) {
  const std::array<uint8_t, 16> key = LongTermKeyMd5("1735689600:alice", "turn.example.org", "pw");
  const SocketAddress relayed = *SocketAddress::Parse("203.0.113.10:49170");
  const SocketAddress mapped = *SocketAddress::Parse("198.51.100.77:61234");
  std::array<uint8_t, 256> buf;
  size_t size = 0;
  for (auto _ : state) {
    MessageBuilder b(buf, Method::kAllocate, MessageClass::kSuccessResponse, kTxid.data());
    b.AddXorAddress(attr::kXorRelayedAddress, relayed);
    b.AddXorAddress(attr::kXorMappedAddress, mapped);
    b.AddU32(attr::kLifetime, 600);
    b.AddMessageIntegrity(key);
    b.AddFingerprint();
    size = b.size();
    benchmark::DoNotOptimize(buf.data());
    benchmark::ClobberMemory();
  }
  state.SetItemsProcessed(state.iterations());
  state.SetBytesProcessed(state.iterations() * size);
}
BENCHMARK(BM_BuildAllocateSuccess);

void BM_MessageIntegrityCheck(benchmark::State& state) {
  AuthenticatedAllocate msg(/*sha256=*/false);
  auto view = MessageView::Parse(msg.bytes(), nullptr);
  if (!view || !view->CheckMessageIntegrity(msg.key)) {
    state.SkipWithError("setup failed");
    return;
  }
  for (auto _ : state) {
    bool ok = view->CheckMessageIntegrity(msg.key);
    benchmark::DoNotOptimize(ok);
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_MessageIntegrityCheck);

void BM_MessageIntegritySha256Check(benchmark::State& state) {
  AuthenticatedAllocate msg(/*sha256=*/true);
  auto view = MessageView::Parse(msg.bytes(), nullptr);
  if (!view || !view->CheckMessageIntegritySha256(msg.key256)) {
    state.SkipWithError("setup failed");
    return;
  }
  for (auto _ : state) {
    bool ok = view->CheckMessageIntegritySha256(msg.key256);
    benchmark::DoNotOptimize(ok);
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_MessageIntegritySha256Check);

void BM_Fingerprint(benchmark::State& state) {
  AuthenticatedAllocate msg(/*sha256=*/false);
  const std::span<const uint8_t> covered = msg.bytes().first(msg.size - 8);
  for (auto _ : state) {
    uint32_t crc = ComputeFingerprint(covered);
    benchmark::DoNotOptimize(crc);
  }
  state.SetItemsProcessed(state.iterations());
  state.SetBytesProcessed(state.iterations() * covered.size());
}
BENCHMARK(BM_Fingerprint);

void BM_ParseChannelData(benchmark::State& state) {
  // A 160-byte Opus/RTP packet behind a ChannelData header.
  std::array<uint8_t, 4 + 160> frame{};
  WriteChannelDataHeader(frame.data(), 0x4001, 160);
  for (auto _ : state) {
    benchmark::DoNotOptimize(frame.data());
    auto cd = ParseChannelData(frame);
    benchmark::DoNotOptimize(cd);
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_ParseChannelData);

}  // namespace
}  // namespace turnpike::stun
