// Routes, authentication and JSON for the control plane; see http_server.h and
// docs/control-plane.md (docs/openapi.yaml is the contract the integration tests check).
#include "control/http_server.h"

#include <sys/socket.h>
#include <time.h>

#include <algorithm>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/strings/str_format.h"
#include "control/metrics.h"
#include "httplib.h"
#include "nlohmann/json.hpp"
#include "spdlog/spdlog.h"
#include "turn/auth.h"
#include "turnpike_version.h"

namespace turnpike::control {
namespace {

using nlohmann::json;

constexpr int64_t kMaxTtl = 7 * 24 * 3600;
constexpr size_t kMaxUserBytes = 256;
constexpr size_t kDefaultPage = 100;
constexpr size_t kMaxPage = 1000;

// The one place absl::Status codes become HTTP statuses (STYLE.md, "Control path").
int HttpStatus(absl::StatusCode code) {
  switch (code) {
    case absl::StatusCode::kOk:
      return 200;
    case absl::StatusCode::kInvalidArgument:
    case absl::StatusCode::kOutOfRange:
      return 400;
    case absl::StatusCode::kUnauthenticated:
      return 401;
    case absl::StatusCode::kPermissionDenied:
      return 403;
    case absl::StatusCode::kNotFound:
      return 404;
    case absl::StatusCode::kAlreadyExists:
    case absl::StatusCode::kFailedPrecondition:
    case absl::StatusCode::kAborted:
      return 409;
    case absl::StatusCode::kResourceExhausted:
      return 429;
    case absl::StatusCode::kUnimplemented:
      return 501;
    case absl::StatusCode::kUnavailable:
    case absl::StatusCode::kDeadlineExceeded:
      return 503;
    default:
      return 500;
  }
}

void SetJson(httplib::Response& res, int status, const json& body) {
  res.status = status;
  res.set_content(body.dump() + "\n", "application/json");
}

void SetError(httplib::Response& res, const absl::Status& s) {
  SetJson(res, HttpStatus(s.code()),
          json{{"error",
                {{"code", absl::StatusCodeToString(s.code())}, {"message", std::string(s.message())}}}});
  if (s.code() == absl::StatusCode::kUnauthenticated) {
    res.set_header("WWW-Authenticate", "Bearer realm=\"turnpike\"");
  }
}

// Every handler ends here: exactly one reply per request.
void Reply(httplib::Response& res, const absl::StatusOr<json>& result, int ok_status = 200) {
  if (!result.ok()) {
    SetError(res, result.status());
    return;
  }
  if (ok_status == 204) {
    res.status = 204;
    return;
  }
  SetJson(res, ok_status, *result);
}

double WallSeconds() {
  timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) / 1e9;
}

// Request bodies: JSON objects only. Exceptions stay inside this function (nlohmann reports
// parse errors with a position only through them).
absl::StatusOr<json> ParseObject(const httplib::Request& req, bool empty_ok) {
  if (req.body.empty()) {
    if (empty_ok) return json::object();
    return absl::InvalidArgumentError("request body is empty; expected a JSON object");
  }
  const std::string type = req.get_header_value("Content-Type");
  if (!type.empty() && type.rfind("application/json", 0) != 0) {
    return absl::InvalidArgumentError(
        absl::StrFormat("Content-Type must be application/json, not %s", type));
  }
  json body;
  try {
    body = json::parse(req.body);
  } catch (const json::parse_error& e) {
    return absl::InvalidArgumentError(absl::StrFormat("malformed JSON: %s", e.what()));
  }
  if (!body.is_object()) return absl::InvalidArgumentError("expected a JSON object");
  return body;
}

json AllocationJson(const turn::AllocationInfo& a) {
  json perms = json::array();
  for (const auto& p : a.permissions) {
    perms.push_back({{"ip", p.ip.ToString()}, {"expires_in_s", p.expires_in_s}});
  }
  json chans = json::array();
  for (const auto& c : a.channels) {
    chans.push_back(
        {{"number", c.number}, {"peer", c.peer.ToString()}, {"expires_in_s", c.expires_in_s}});
  }
  return json{
      {"id", FormatAllocationId(a.id)},
      {"worker", turn::Engine::WorkerOf(a.id)},
      {"username", a.username},
      {"client",
       {{"transport", std::string(turn::ClientTransportName(a.transport))},
        {"address", a.tuple.client.ToString()},
        {"server", a.tuple.server.ToString()}}},
      {"relayed_address", a.relay.ToString()},
      {"advertised_address", a.advertised.ToString()},
      {"lifetime_left_s", a.lifetime_left_s},
      {"permissions", perms},
      {"channels", chans},
      {"to_peer", {{"packets", a.to_peer_packets}, {"bytes", a.to_peer_bytes}}},
      {"to_client", {{"packets", a.to_client_packets}, {"bytes", a.to_client_bytes}}},
  };
}

std::string TurnUri(const IpAddress& ip, uint16_t port) {
  const std::string host = ip.is_v6() ? "[" + ip.ToString() + "]" : ip.ToString();
  return absl::StrFormat("turn:%s:%d?transport=udp", host, port);
}

enum class Access : uint8_t { kProbe, kApi };

struct Route {
  std::string_view method;
  std::string_view pattern;  // "{id}" matches one path segment
  Access access;
  std::function<void(const httplib::Request&, httplib::Response&, std::string_view id)> handle;
};

// Matches `path` against `pattern`; fills `id` for a "{id}" segment.
bool Match(std::string_view pattern, std::string_view path, std::string_view* id) {
  while (!pattern.empty() || !path.empty()) {
    if (pattern.empty() || path.empty() || pattern.front() != '/' || path.front() != '/') {
      return false;
    }
    pattern.remove_prefix(1);
    path.remove_prefix(1);
    const size_t pe = std::min(pattern.find('/'), pattern.size());
    const size_t se = std::min(path.find('/'), path.size());
    const std::string_view pseg = pattern.substr(0, pe);
    const std::string_view sseg = path.substr(0, se);
    if (pseg == "{id}") {
      if (sseg.empty()) return false;
      *id = sseg;
    } else if (pseg != sseg) {
      return false;
    }
    pattern.remove_prefix(pe);
    path.remove_prefix(se);
  }
  return true;
}

}  // namespace

HttpServer::HttpServer(NodeController* node, HttpLimits limits)
    : node_(node), limits_(limits), server_(std::make_unique<httplib::Server>()) {}

HttpServer::~HttpServer() { Stop(); }

void HttpServer::Routes() {
  NodeController* node = node_;
  const HttpLimits limits = limits_;
  auto routes = std::make_shared<std::vector<Route>>();

  routes->push_back({"GET", "/ping", Access::kProbe,
                     [node](const httplib::Request&, httplib::Response& res, std::string_view) {
                       Reply(res, json{{"state", node->draining() ? "draining" : "up"},
                                       {"version", TURNPIKE_VERSION},
                                       {"path", node->config()->deployment_color}});
                     }});
  routes->push_back({"GET", "/healthz", Access::kProbe,
                     [node](const httplib::Request&, httplib::Response& res, std::string_view) {
                       absl::Status s = node->CheckWorkers(std::chrono::milliseconds(1000));
                       if (!s.ok()) {
                         Reply(res, s);
                         return;
                       }
                       Reply(res, json{{"status", "ok"},
                                       {"workers", node->backend().worker_count()}});
                     }});
  routes->push_back({"GET", "/readyz", Access::kProbe,
                     [node](const httplib::Request&, httplib::Response& res, std::string_view) {
                       if (node->ready()) {
                         Reply(res, json{{"ready", true}});
                         return;
                       }
                       const char* why = node->shutting_down() ? "shutting down"
                                         : node->draining()    ? "draining"
                                                               : "starting";
                       Reply(res, absl::UnavailableError(absl::StrFormat("not ready: %s", why)));
                     }});
  routes->push_back(
      {"GET", "/metrics", Access::kProbe,
       [node](const httplib::Request&, httplib::Response& res, std::string_view) {
         dataplane::Backend& b = node->backend();
         std::shared_ptr<const ServerConfig> cfg = node->config();
         MetricsInput in;
         in.version = TURNPIKE_VERSION;
         in.backend = std::string(b.name());
         in.color = cfg->deployment_color;
         in.draining = node->draining();
         in.ready = node->ready();
         in.start_time_s = node->start_time_s();
         for (size_t w = 0; w < b.worker_count(); ++w) {
           in.engine.push_back(b.engine_counters(w));
           in.io.push_back(b.io_counters(w));
         }
         in.busy_ratio = node->busy_ratios();
         for (const IpAddress& ip : b.relay_ips()) {
           in.relays.push_back({ip.ToString(), b.node_state().FreePorts(ip),
                                uint64_t{cfg->max_port} - cfg->min_port + 1});
         }
         in.node_allocations = b.node_state().total_allocations();
         in.total_quota = cfg->total_quota;
         in.user_quota = cfg->user_quota;
         in.event_subscribers = node->events().subscribers();
         res.status = 200;
         res.set_content(RenderMetrics(in), "text/plain; version=0.0.4; charset=utf-8");
       }});

  routes->push_back(
      {"GET", "/v1/node", Access::kApi,
       [node](const httplib::Request&, httplib::Response& res, std::string_view) {
         dataplane::Backend& b = node->backend();
         std::shared_ptr<const ServerConfig> cfg = node->config();
         json relays = json::array();
         for (const IpAddress& ip : b.relay_ips()) {
           relays.push_back({{"ip", ip.ToString()},
                             {"free_ports", b.node_state().FreePorts(ip)},
                             {"total_ports", uint64_t{cfg->max_port} - cfg->min_port + 1}});
         }
         json listening = json::array();
         for (const SocketAddress& a : b.listening_addresses()) listening.push_back(a.ToString());
         const std::vector<double> busy = node->busy_ratios();
         json workers = json::array();
         for (size_t w = 0; w < b.worker_count(); ++w) {
           workers.push_back({{"worker", w},
                              {"busy_ratio", w < busy.size() ? busy[w] : 0.0},
                              {"allocations", b.io_counters(w).allocations}});
         }
         Reply(res, json{
                        {"version", TURNPIKE_VERSION},
                        {"color", cfg->deployment_color},
                        {"backend", std::string(node->backend().name())},
                        {"workers", b.worker_count()},
                        {"state", node->draining() ? "draining" : "up"},
                        {"ready", node->ready()},
                        {"listening", listening},
                        {"capacity",
                         {{"relays", relays},
                          {"allocations", b.node_state().total_allocations()},
                          {"total_quota", cfg->total_quota},
                          {"user_quota", cfg->user_quota},
                          {"max_allocations", cfg->max_allocations}}},
                        {"load", {{"workers", workers}}},
                        {"uptime_s", WallSeconds() - node->start_time_s()},
                    });
       }});

  routes->push_back(
      {"POST", "/v1/credentials", Access::kApi,
       [node](const httplib::Request& req, httplib::Response& res, std::string_view) {
         absl::StatusOr<json> body = ParseObject(req, false);
         if (!body.ok()) {
           Reply(res, body.status());
           return;
         }
         const json& b = *body;
         if (!b.contains("user") || !b["user"].is_string()) {
           Reply(res, absl::InvalidArgumentError("\"user\" is required and must be a string"));
           return;
         }
         const std::string user = b["user"].get<std::string>();
         if (user.empty() || user.size() > kMaxUserBytes) {
           Reply(res, absl::InvalidArgumentError(
                          absl::StrFormat("\"user\" must be 1 to %d bytes", kMaxUserBytes)));
           return;
         }
         for (unsigned char ch : user) {
           if (ch < 0x20 || ch == 0x7f) {
             Reply(res, absl::InvalidArgumentError("\"user\" contains a control character"));
             return;
           }
         }
         int64_t ttl = 86400;
         if (b.contains("ttl")) {
           if (!b["ttl"].is_number_integer()) {
             Reply(res, absl::InvalidArgumentError("\"ttl\" must be an integer (seconds)"));
             return;
           }
           ttl = b["ttl"].get<int64_t>();
           if (ttl < 1 || ttl > kMaxTtl) {
             Reply(res, absl::InvalidArgumentError(
                            absl::StrFormat("\"ttl\" must be 1..%d seconds", kMaxTtl)));
             return;
           }
         }
         std::shared_ptr<const ServerConfig> cfg = node->config();
         if (!cfg->use_auth_secret || cfg->static_auth_secrets.empty()) {
           Reply(res, absl::FailedPreconditionError(
                          "TURN REST credentials need use-auth-secret with a "
                          "static-auth-secret on this node"));
           return;
         }
         const int64_t expiry = static_cast<int64_t>(time(nullptr)) + ttl;
         const std::string username = absl::StrFormat("%d:%s", expiry, user);
         json uris = json::array();
         if (!cfg->external_ips.empty()) {
           for (const ExternalIp& e : cfg->external_ips) {
             uris.push_back(TurnUri(e.public_ip, node->backend().config().listening_port));
           }
         } else {
           for (const SocketAddress& a : node->backend().listening_addresses()) {
             uris.push_back(TurnUri(a.ip, a.port));
           }
         }
         Reply(res, json{{"username", username},
                         {"password", turn::Authenticator::RestPassword(
                                          cfg->static_auth_secrets.front(), username)},
                         {"ttl", ttl},
                         {"uris", uris}});
       }});

  routes->push_back(
      {"GET", "/v1/allocations", Access::kApi,
       [node](const httplib::Request& req, httplib::Response& res, std::string_view) {
         size_t limit = kDefaultPage;
         if (req.has_param("limit")) {
           const std::string v = req.get_param_value("limit");
           size_t parsed = 0;
           const bool digits = !v.empty() && v.size() <= 6 &&
                               std::all_of(v.begin(), v.end(), [](char c) {
                                 return c >= '0' && c <= '9';
                               });
           if (digits) parsed = std::stoul(v);
           if (!digits || parsed < 1 || parsed > kMaxPage) {
             Reply(res, absl::InvalidArgumentError(
                            absl::StrFormat("limit must be 1..%d", kMaxPage)));
             return;
           }
           limit = parsed;
         }
         uint64_t after = 0;
         bool has_cursor = false;
         if (req.has_param("cursor")) {
           absl::StatusOr<uint64_t> c = ParseAllocationId(req.get_param_value("cursor"));
           if (!c.ok()) {
             Reply(res, absl::InvalidArgumentError("cursor must be an allocation id (hex)"));
             return;
           }
           after = *c;
           has_cursor = true;
         }
         const bool by_user = req.has_param("user");
         const std::string user = by_user ? req.get_param_value("user") : "";
         absl::StatusOr<std::vector<turn::AllocationInfo>> all = node->ListAllocations();
         if (!all.ok()) {
           Reply(res, all.status());
           return;
         }
         json items = json::array();
         size_t total = 0;
         std::optional<uint64_t> last;
         bool more = false;
         for (const turn::AllocationInfo& a : *all) {
           if (by_user && a.username != user) continue;
           ++total;
           if (has_cursor && a.id <= after) continue;
           if (items.size() == limit) {
             more = true;
             continue;
           }
           items.push_back(AllocationJson(a));
           last = a.id;
         }
         Reply(res, json{{"allocations", items},
                         {"count", items.size()},
                         {"total", total},
                         {"next_cursor", more && last ? json(FormatAllocationId(*last))
                                                      : json(nullptr)}});
       }});
  routes->push_back(
      {"GET", "/v1/allocations/{id}", Access::kApi,
       [node](const httplib::Request&, httplib::Response& res, std::string_view id_text) {
         absl::StatusOr<uint64_t> id = ParseAllocationId(id_text);
         if (!id.ok()) {
           Reply(res, id.status());
           return;
         }
         absl::StatusOr<turn::AllocationInfo> a = node->GetAllocation(*id);
         if (!a.ok()) {
           Reply(res, a.status());
           return;
         }
         Reply(res, AllocationJson(*a));
       }});
  routes->push_back(
      {"DELETE", "/v1/allocations/{id}", Access::kApi,
       [node](const httplib::Request&, httplib::Response& res, std::string_view id_text) {
         absl::StatusOr<uint64_t> id = ParseAllocationId(id_text);
         if (!id.ok()) {
           Reply(res, id.status());
           return;
         }
         absl::Status s = node->KillAllocation(*id);
         if (!s.ok()) {
           Reply(res, s);
           return;
         }
         Reply(res, json(nullptr), 204);
       }});

  auto drain_state = [node] {
    return json{{"draining", node->draining()}, {"shutting_down", node->shutting_down()}};
  };
  routes->push_back({"GET", "/v1/drain", Access::kApi,
                     [drain_state](const httplib::Request&, httplib::Response& res,
                                   std::string_view) { Reply(res, drain_state()); }});
  routes->push_back({"POST", "/v1/drain", Access::kApi,
                     [node, drain_state](const httplib::Request&, httplib::Response& res,
                                         std::string_view) {
                       absl::Status s = node->SetDraining(true, "api");
                       if (!s.ok()) {
                         Reply(res, s);
                         return;
                       }
                       Reply(res, drain_state());
                     }});
  routes->push_back({"DELETE", "/v1/drain", Access::kApi,
                     [node, drain_state](const httplib::Request&, httplib::Response& res,
                                         std::string_view) {
                       absl::Status s = node->SetDraining(false, "api");
                       if (!s.ok()) {
                         Reply(res, s);
                         return;
                       }
                       Reply(res, drain_state());
                     }});

  routes->push_back(
      {"POST", "/v1/config/reload", Access::kApi,
       [node](const httplib::Request& req, httplib::Response& res, std::string_view) {
         // No body is needed; one that is sent must still be a JSON object.
         absl::StatusOr<json> body = ParseObject(req, true);
         if (!body.ok()) {
           Reply(res, body.status());
           return;
         }
         absl::StatusOr<ReloadReport> r = node->Reload("api");
         if (!r.ok()) {
           Reply(res, r.status());
           return;
         }
         Reply(res, json{{"reloaded", true}, {"applied", r->applied}, {"ignored", r->ignored}});
       }});

  routes->push_back(
      {"GET", "/v1/events", Access::kApi,
       [node, limits](const httplib::Request& req, httplib::Response& res, std::string_view) {
         EventHub* hub = &node->events();
         if (!hub->AddSubscriber(limits.max_event_streams)) {
           Reply(res, absl::ResourceExhaustedError(absl::StrFormat(
                          "too many event streams (at most %d)", limits.max_event_streams)));
           return;
         }
         struct Stream {
           uint64_t next = 0;
           bool greeted = false;
         };
         auto stream = std::make_shared<Stream>();
         stream->next = hub->next_seq();
         const std::string last_id = req.get_header_value("Last-Event-ID");
         if (!last_id.empty() && last_id.size() < 20 &&
             std::all_of(last_id.begin(), last_id.end(),
                         [](char c) { return c >= '0' && c <= '9'; })) {
           stream->next = std::min<uint64_t>(std::stoull(last_id) + 1, hub->next_seq());
         }
         res.status = 200;
         res.set_header("Cache-Control", "no-cache");
         res.set_header("X-Accel-Buffering", "no");
         res.set_chunked_content_provider(
             "text/event-stream",
             [hub, stream](size_t, httplib::DataSink& sink) {
               std::string out;
               if (!stream->greeted) {
                 stream->greeted = true;
                 out = ": turnpike event stream\n\n";
               } else {
                 uint64_t missed = 0;
                 std::vector<Event> events =
                     hub->WaitFrom(&stream->next, std::chrono::seconds(15), &missed);
                 if (hub->shut_down()) {
                   sink.done();
                   return true;
                 }
                 if (missed > 0) {
                   out += absl::StrFormat("event: missed\ndata: {\"type\":\"missed\",\"count\":%d}\n\n",
                                          missed);
                 }
                 for (const Event& e : events) {
                   out += absl::StrFormat("id: %d\nevent: %s\ndata: %s\n\n", e.seq, e.type, e.json);
                 }
                 if (out.empty()) out = ": keep-alive\n\n";
               }
               return sink.write(out.data(), out.size());
             },
             [hub](bool) { hub->RemoveSubscriber(); });
       }});

  auto dispatch = [node, routes](std::string_view method, const httplib::Request& req,
                                 httplib::Response& res) {
    std::string_view id;
    const Route* found = nullptr;
    std::vector<std::string_view> allowed;
    for (const Route& r : *routes) {
      std::string_view rid;
      if (!Match(r.pattern, req.path, &rid)) continue;
      allowed.push_back(r.method);
      if (r.method == method) {
        found = &r;
        id = rid;
      }
    }
    if (found == nullptr) {
      if (allowed.empty()) {
        Reply(res, absl::NotFoundError(absl::StrFormat("no such endpoint: %s", req.path)));
        return;
      }
      std::string allow;
      for (std::string_view m : allowed) allow += std::string(allow.empty() ? "" : ", ") + std::string(m);
      res.set_header("Allow", allow);
      SetJson(res, 405,
              json{{"error",
                    {{"code", "METHOD_NOT_ALLOWED"},
                     {"message", absl::StrFormat("%s is not allowed on %s (allowed: %s)",
                                                 std::string(method), req.path, allow)}}}});
      return;
    }
    const bool needs_token =
        found->access == Access::kApi || !node->config()->control_open_probes;
    if (needs_token) {
      if (!node->has_token()) {
        Reply(res, absl::UnauthenticatedError(
                       "no control token is configured on this node (set control-token-file "
                       "or TURNPIKE_CONTROL_TOKEN); the API is closed"));
        return;
      }
      const std::string auth = req.get_header_value("Authorization");
      constexpr std::string_view kBearer = "Bearer ";
      if (auth.size() <= kBearer.size() || auth.compare(0, kBearer.size(), kBearer) != 0) {
        Reply(res, absl::UnauthenticatedError("missing bearer token (Authorization: Bearer ...)"));
        return;
      }
      if (!node->CheckToken(std::string_view(auth).substr(kBearer.size()))) {
        Reply(res, absl::UnauthenticatedError("invalid token"));
        return;
      }
    }
    found->handle(req, res, id);
  };
  server_->Get(".*", [dispatch](const httplib::Request& q, httplib::Response& r) {
    dispatch("GET", q, r);
  });
  server_->Post(".*", [dispatch](const httplib::Request& q, httplib::Response& r) {
    dispatch("POST", q, r);
  });
  server_->Put(".*", [dispatch](const httplib::Request& q, httplib::Response& r) {
    dispatch("PUT", q, r);
  });
  server_->Patch(".*", [dispatch](const httplib::Request& q, httplib::Response& r) {
    dispatch("PATCH", q, r);
  });
  server_->Delete(".*", [dispatch](const httplib::Request& q, httplib::Response& r) {
    dispatch("DELETE", q, r);
  });
  server_->Options(".*", [dispatch](const httplib::Request& q, httplib::Response& r) {
    dispatch("OPTIONS", q, r);
  });
  // Statuses httplib sets itself (413 body too large, 400 unparsable request, ...) get the same
  // JSON error shape; replies our handlers already wrote are left alone.
  server_->set_error_handler(httplib::Server::HandlerWithResponse(
      [](const httplib::Request&, httplib::Response& res) {
    if (!res.body.empty()) return httplib::Server::HandlerResponse::Unhandled;
    const std::string message =
        res.status == 413 ? "request body too large"
                          : absl::StrFormat("the server could not handle the request (HTTP %d)",
                                            res.status);
    const char* code = res.status == 413   ? "PAYLOAD_TOO_LARGE"
                       : res.status == 404 ? "NOT_FOUND"
                       : res.status < 500  ? "INVALID_ARGUMENT"
                                           : "INTERNAL";
    SetJson(res, res.status, json{{"error", {{"code", code}, {"message", message}}}});
    return httplib::Server::HandlerResponse::Handled;
  }));
  server_->set_exception_handler(
      [](const httplib::Request&, httplib::Response& res, std::exception_ptr) {
        SetError(res, absl::InternalError("internal error"));
      });
}

absl::StatusOr<uint16_t> HttpServer::Start(const IpAddress& ip, uint16_t port) {
  Routes();
  const size_t threads = limits_.threads;
  server_->new_task_queue = [threads] { return new httplib::ThreadPool(threads); };
  server_->set_payload_max_length(limits_.max_body_bytes);
  server_->set_read_timeout(limits_.read_timeout_s, 0);
  server_->set_write_timeout(limits_.write_timeout_s, 0);
  server_->set_keep_alive_max_count(100);
  server_->set_keep_alive_timeout(5);
  // httplib listens with a backlog of 5; remember the socket to widen it after bind, so a burst
  // of scrapes waits in the queue instead of having SYNs dropped and retried a second later.
  int* fd_out = &listen_fd_;
  server_->set_socket_options([fd_out](int sock) {
    int on = 1;
    setsockopt(sock, SOL_SOCKET, SO_REUSEADDR, &on, sizeof(on));
    *fd_out = sock;
  });
  const std::string host = ip.ToString();
  int bound = port;
  if (port == 0) {
    bound = server_->bind_to_any_port(host);
    if (bound <= 0) bound = -1;
  } else if (!server_->bind_to_port(host, port)) {
    bound = -1;
  }
  if (bound < 0) {
    return absl::UnavailableError(absl::StrFormat(
        "cannot listen on %s port %d for the control plane (in use? set control-listen)", host,
        port));
  }
  if (listen_fd_ >= 0) ::listen(listen_fd_, 512);
  httplib::Server* s = server_.get();
  thread_ = std::thread([s] { s->listen_after_bind(); });
  // Stop() can only stop a server that is running; wait for the accept loop to start.
  for (int i = 0; i < 2000 && !server_->is_running(); ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  return static_cast<uint16_t>(bound);
}

void HttpServer::Stop() {
  node_->events().Shutdown();
  if (server_) server_->stop();
  if (thread_.joinable()) thread_.join();
}

}  // namespace turnpike::control
