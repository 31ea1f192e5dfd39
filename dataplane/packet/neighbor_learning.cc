#include "dataplane/packet/neighbor_learning.h"

#include "dataplane/packet/arp.h"
#include "dataplane/packet/ndp.h"

namespace turnpike::dataplane::packet {

std::optional<NeighborObservation> ExtractNeighbor(std::span<const uint8_t> frame,
                                                   const FrameInfo& info) {
  if (info.kind == FrameKind::kArp) {
    const std::optional<ArpMessage> arp = ParseArp(frame, info);
    if (!arp || arp->sender_ip.IsUnspecified() || !arp->sender_mac.IsUnicast()) {
      return std::nullopt;
    }
    NeighborObservation o{
        arp->sender_ip, arp->sender_mac,
        arp->op == kArpOpRequest ? NeighborSource::kArpRequest : NeighborSource::kArpReply,
        arp->target_ip};
    return o;
  }
  if (info.kind != FrameKind::kIpv6) {
    return std::nullopt;
  }
  const std::optional<NdMessageInfo> nd = ParseNeighborDiscovery(frame, info);
  if (!nd || !nd->link_layer || !nd->link_layer->IsUnicast()) {
    return std::nullopt;
  }
  if (nd->type == kIcmpv6NeighborSolicitation) {
    if (info.src_ip.IsUnspecified()) {
      return std::nullopt;
    }
    return NeighborObservation{info.src_ip, *nd->link_layer, NeighborSource::kNeighborSolicitation,
                               nd->target};
  }
  NeighborObservation o{nd->target, *nd->link_layer, NeighborSource::kNeighborAdvertisement,
                        nd->target};
  o.solicited = (nd->flags & kNaFlagSolicited) != 0;
  o.override_flag = (nd->flags & kNaFlagOverride) != 0;
  return o;
}

}  // namespace turnpike::dataplane::packet
