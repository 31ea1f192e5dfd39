// STUN message codec (RFC 8489) with the TURN attributes of RFC 8656. Zero-copy: MessageView
// points into the caller's buffer and keeps a small inline index of attribute offsets;
// MessageBuilder writes straight into a caller-provided buffer. No heap allocation on either
// path, no socket code.
//
//     0                   1                   2                   3
//     0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//    |0 0|     STUN Message Type     |         Message Length        |
//    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//    |                         Magic Cookie                          |
//    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//    |                     Transaction ID (96 bits)                  |
//    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <span>
#include <string_view>

#include "turn/net/socket_address.h"

namespace turnpike::stun {

inline constexpr uint32_t kMagicCookie = 0x2112A442;
inline constexpr size_t kHeaderSize = 20;
inline constexpr size_t kTransactionIdSize = 12;
inline constexpr uint32_t kFingerprintXor = 0x5354554E;
inline constexpr size_t kMaxAttributes = 40;  // more than this and the message is refused

using TransactionId = std::array<uint8_t, kTransactionIdSize>;

enum class Method : uint16_t {
  kBinding = 0x001,
  kAllocate = 0x003,
  kRefresh = 0x004,
  kSend = 0x006,
  kData = 0x007,
  kCreatePermission = 0x008,
  kChannelBind = 0x009,
  kConnect = 0x00A,  // RFC 6062, refused
};

enum class MessageClass : uint8_t {
  kRequest = 0,
  kIndication = 1,
  kSuccessResponse = 2,
  kErrorResponse = 3,
};

// Attribute types (RFC 8489 18.3, RFC 8656 18, RFC 8445 for the ICE ones).
namespace attr {
inline constexpr uint16_t kMappedAddress = 0x0001;
inline constexpr uint16_t kUsername = 0x0006;
inline constexpr uint16_t kMessageIntegrity = 0x0008;
inline constexpr uint16_t kErrorCode = 0x0009;
inline constexpr uint16_t kUnknownAttributes = 0x000A;
inline constexpr uint16_t kChannelNumber = 0x000C;
inline constexpr uint16_t kLifetime = 0x000D;
inline constexpr uint16_t kXorPeerAddress = 0x0012;
inline constexpr uint16_t kData = 0x0013;
inline constexpr uint16_t kRealm = 0x0014;
inline constexpr uint16_t kNonce = 0x0015;
inline constexpr uint16_t kXorRelayedAddress = 0x0016;
inline constexpr uint16_t kRequestedAddressFamily = 0x0017;
inline constexpr uint16_t kEvenPort = 0x0018;
inline constexpr uint16_t kRequestedTransport = 0x0019;
inline constexpr uint16_t kDontFragment = 0x001A;
inline constexpr uint16_t kMessageIntegritySha256 = 0x001C;
inline constexpr uint16_t kPasswordAlgorithm = 0x001D;
inline constexpr uint16_t kUserhash = 0x001E;
inline constexpr uint16_t kXorMappedAddress = 0x0020;
inline constexpr uint16_t kReservationToken = 0x0022;
inline constexpr uint16_t kPriority = 0x0024;
inline constexpr uint16_t kUseCandidate = 0x0025;
// Comprehension-optional (0x8000-0xFFFF).
inline constexpr uint16_t kAdditionalAddressFamily = 0x8000;
inline constexpr uint16_t kAddressErrorCode = 0x8001;
inline constexpr uint16_t kPasswordAlgorithms = 0x8002;
inline constexpr uint16_t kAlternateDomain = 0x8003;
inline constexpr uint16_t kIcmp = 0x8004;
inline constexpr uint16_t kSoftware = 0x8022;
inline constexpr uint16_t kAlternateServer = 0x8023;
inline constexpr uint16_t kFingerprint = 0x8028;
inline constexpr uint16_t kIceControlled = 0x8029;
inline constexpr uint16_t kIceControlling = 0x802A;

inline constexpr bool IsComprehensionRequired(uint16_t type) { return type < 0x8000; }
// True for every comprehension-required attribute this codec and the TURN server understand;
// the server answers 420 with UNKNOWN-ATTRIBUTES for any other in a request.
bool IsKnownComprehensionRequired(uint16_t type);
}  // namespace attr

// PASSWORD-ALGORITHM values (RFC 8489 18.5).
enum class PasswordAlgorithm : uint16_t { kMd5 = 0x0001, kSha256 = 0x0002 };

// Why Parse refused a datagram; the caller counts these.
enum class ParseError : uint8_t {
  kNone = 0,
  kTooShort,           // fewer than 20 bytes
  kNotStun,            // top two bits set or wrong magic cookie
  kBadLength,          // header length not a multiple of 4 or not matching the datagram
  kTruncatedAttribute, // attribute runs past the end
  kTooManyAttributes,
  kBadFingerprint,     // FINGERPRINT present but wrong, or not last
};

// Message type field <-> method and class (RFC 8489 5, figure 3).
uint16_t EncodeMessageType(Method method, MessageClass cls);
Method DecodeMethod(uint16_t type);
MessageClass DecodeClass(uint16_t type);

// Cheap demultiplexing check (RFC 7983): first byte 0..3, cookie present, length plausible.
bool LooksLikeStun(std::span<const uint8_t> data);

// A parsed message over the caller's buffer. Valid while that buffer is.
class MessageView {
 public:
  struct Attribute {
    uint16_t type;
    uint16_t length;  // value length, without padding
    uint16_t offset;  // offset of the value from the start of the message
  };

  // Validates the header, walks the attributes and checks FINGERPRINT if present (it must then
  // be last). Attributes after MESSAGE-INTEGRITY / MESSAGE-INTEGRITY-SHA256 other than those two
  // and FINGERPRINT are ignored, as RFC 8489 14.5 requires; they are not indexed.
  static std::optional<MessageView> Parse(std::span<const uint8_t> data, ParseError* error);

  Method method() const { return method_; }
  MessageClass message_class() const { return class_; }
  uint16_t message_type() const;
  const uint8_t* transaction_id() const { return data_.data() + 8; }
  TransactionId transaction_id_array() const;
  std::span<const uint8_t> bytes() const { return data_; }

  std::span<const Attribute> attributes() const { return {attrs_.data(), num_attrs_}; }
  bool Has(uint16_t type) const { return Find(type) != nullptr; }
  // First attribute of `type`, or nullptr.
  const Attribute* Find(uint16_t type) const;
  std::span<const uint8_t> Value(const Attribute& a) const {
    return data_.subspan(a.offset, a.length);
  }
  // Value of the first attribute of `type`; nullopt when absent.
  std::optional<std::span<const uint8_t>> FindValue(uint16_t type) const;
  std::optional<std::string_view> FindString(uint16_t type) const;
  // A 32-bit value (LIFETIME, REQUESTED-TRANSPORT's first byte is in the top 8 bits, ...).
  std::optional<uint32_t> FindU32(uint16_t type) const;
  // XOR-MAPPED-ADDRESS / XOR-PEER-ADDRESS / XOR-RELAYED-ADDRESS; nullopt when absent or bad.
  std::optional<SocketAddress> FindXorAddress(uint16_t type) const;
  // All occurrences of an XOR address attribute (CreatePermission may carry several).
  // Returns how many were written to `out`; bad ones are skipped and counted in `bad`.
  size_t FindAllXorAddresses(uint16_t type, std::span<SocketAddress> out, size_t* bad) const;
  // MAPPED-ADDRESS / ALTERNATE-SERVER (plain, not XORed).
  std::optional<SocketAddress> FindAddress(uint16_t type) const;
  // ERROR-CODE: class*100 + number, and the reason phrase.
  std::optional<int> FindErrorCode(std::string_view* reason = nullptr) const;

  // Comprehension-required attributes not understood (attr::IsKnownComprehensionRequired);
  // returns how many were written to `out`.
  size_t UnknownComprehensionRequired(std::span<uint16_t> out) const;

  // MESSAGE-INTEGRITY (HMAC-SHA1, 20 bytes) and MESSAGE-INTEGRITY-SHA256 (HMAC-SHA256, 16..32
  // bytes) checks (RFC 8489 14.5, 14.6), compared in constant time. False when absent.
  bool HasMessageIntegrity() const { return mi_index_ >= 0; }
  bool HasMessageIntegritySha256() const { return mi256_index_ >= 0; }
  bool CheckMessageIntegrity(std::span<const uint8_t> key) const;
  bool CheckMessageIntegritySha256(std::span<const uint8_t> key) const;
  bool HasFingerprint() const { return has_fingerprint_; }

 private:
  std::span<const uint8_t> data_;
  Method method_{};
  MessageClass class_{};
  std::array<Attribute, kMaxAttributes> attrs_;
  uint8_t num_attrs_ = 0;
  int8_t mi_index_ = -1;
  int8_t mi256_index_ = -1;
  bool has_fingerprint_ = false;
};

// Writes a message into `buffer`. Every Add* is a no-op once the buffer overflowed; check ok()
// before using the result. The header length field is kept up to date after every Add*.
class MessageBuilder {
 public:
  MessageBuilder() = default;  // empty; assign a constructed builder before use
  MessageBuilder(std::span<uint8_t> buffer, Method method, MessageClass cls,
                 const uint8_t* transaction_id);

  // Raw attribute; pads with zeros to a multiple of 4.
  void AddAttribute(uint16_t type, std::span<const uint8_t> value);
  void AddString(uint16_t type, std::string_view value);
  void AddU32(uint16_t type, uint32_t value);
  void AddEmpty(uint16_t type);  // DONT-FRAGMENT-style flags
  void AddXorAddress(uint16_t type, const SocketAddress& address);
  void AddAddress(uint16_t type, const SocketAddress& address);
  // ERROR-CODE with an optional reason phrase (RFC 8489 14.8).
  void AddErrorCode(int code, std::string_view reason);
  void AddUnknownAttributes(std::span<const uint16_t> types);
  // PASSWORD-ALGORITHMS listing `algorithms` with empty parameters (RFC 8489 14.11).
  void AddPasswordAlgorithms(std::span<const PasswordAlgorithm> algorithms);
  void AddPasswordAlgorithm(PasswordAlgorithm algorithm);
  // Integrity and fingerprint go last, in this order (RFC 8489 14.5, 14.6, 14.7).
  void AddMessageIntegrity(std::span<const uint8_t> key);
  void AddMessageIntegritySha256(std::span<const uint8_t> key);
  void AddFingerprint();

  bool ok() const { return !overflow_; }
  size_t size() const { return size_; }
  std::span<const uint8_t> bytes() const { return {buffer_.data(), size_}; }

 private:
  uint8_t* Reserve(uint16_t type, size_t length);  // header + padded value; nullptr on overflow
  void SetLength();

  std::span<uint8_t> buffer_;
  size_t size_ = 0;
  bool overflow_ = false;
};

// FINGERPRINT value for the first `length` bytes of a message whose header length already
// counts the FINGERPRINT attribute: CRC-32 XOR 0x5354554E.
uint32_t ComputeFingerprint(std::span<const uint8_t> bytes);

// Keys (RFC 8489 9.2.2): MD5(username ":" realm ":" password) for MESSAGE-INTEGRITY and
// SHA-256 of the same string for MESSAGE-INTEGRITY-SHA256 with PASSWORD-ALGORITHM SHA-256.
// The password must already be OpaqueString-prepared (we accept ASCII as is).
std::array<uint8_t, 16> LongTermKeyMd5(std::string_view username, std::string_view realm,
                                       std::string_view password);
std::array<uint8_t, 32> LongTermKeySha256(std::string_view username, std::string_view realm,
                                          std::string_view password);
// USERHASH = SHA-256(username ":" realm) (RFC 8489 14.4).
std::array<uint8_t, 32> UserHash(std::string_view username, std::string_view realm);

// ChannelData (RFC 8656 12.4). RFC 8656 narrowed channel numbers to 0x4000-0x4FFF, but RFC 5766
// allowed up to 0x7FFF and coturn and its clients (turnutils_uclient) still use that range, so
// the server accepts 0x4000-0x7FFF like coturn does. Over UDP the padding is optional for the
// sender and the receiver ignores bytes past the length.
//
//     0                   1                   2                   3
//    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//    |         Channel Number        |            Length             |
//    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//    /                       Application Data                        /
inline constexpr uint16_t kMinChannel = 0x4000;
inline constexpr uint16_t kMaxChannel = 0x7FFF;      // RFC 5766 range, for compatibility
inline constexpr uint16_t kMaxChannelRfc8656 = 0x4FFF;
inline constexpr size_t kChannelDataHeaderSize = 4;

struct ChannelDataView {
  uint16_t channel;
  std::span<const uint8_t> payload;
};
// First byte 0x40..0x7F: RFC 7983's TURN range 64..79 plus RFC 5766's 80..127, which nothing
// else demultiplexed on a TURN port uses (STUN is 0..3, DTLS 20..63, RTP 128..191).
inline bool LooksLikeChannelData(std::span<const uint8_t> data) {
  return data.size() >= kChannelDataHeaderSize && (data[0] & 0xC0) == 0x40;
}
std::optional<ChannelDataView> ParseChannelData(std::span<const uint8_t> data);
inline void WriteChannelDataHeader(uint8_t* out, uint16_t channel, uint16_t length) {
  out[0] = static_cast<uint8_t>(channel >> 8);
  out[1] = static_cast<uint8_t>(channel);
  out[2] = static_cast<uint8_t>(length >> 8);
  out[3] = static_cast<uint8_t>(length);
}

}  // namespace turnpike::stun
