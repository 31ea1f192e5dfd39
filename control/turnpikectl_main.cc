// turnpikectl: a command-line client for turnpiked's REST control plane (docs/control-plane.md).
// Readable tables by default, the API's JSON with --json.
//
//   turnpikectl [--url=URL] [--token=T|--token-file=F] [--json] [--timeout=S] COMMAND ...
//
// Exit codes: 0 success, 1 the request failed (the API's message is printed), 2 usage error.
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>
#include <string_view>
#include <vector>

#include "fmt/format.h"
#include "httplib.h"
#include "nlohmann/json.hpp"

namespace {

using nlohmann::json;

constexpr const char* kUsage =
    "Usage: turnpikectl [options] COMMAND\n"
    "\n"
    "Commands:\n"
    "  status                             node, capacity and load (GET /v1/node, /healthz)\n"
    "  allocations list [--user=U] [--limit=N] [--cursor=ID]\n"
    "  allocations show ID                one allocation in detail\n"
    "  allocations kill ID                end an allocation now\n"
    "  credentials USER [--ttl=SECONDS]   mint TURN REST credentials\n"
    "  drain on|off|status                refuse new allocations (or stop refusing)\n"
    "  reload                             reload the configuration\n"
    "  events                             follow the event stream (Ctrl-C to stop)\n"
    "\n"
    "Options:\n"
    "  --url=URL          control plane (default http://127.0.0.1:9641, or TURNPIKE_CONTROL_URL)\n"
    "  --token=TOKEN      bearer token (default: TURNPIKE_CONTROL_TOKEN)\n"
    "  --token-file=PATH  read the token from a file\n"
    "  --json             print the API's JSON instead of tables\n"
    "  --timeout=SECONDS  request timeout (default 10)\n";

struct Options {
  std::string url = "http://127.0.0.1:9641";
  std::string token;
  bool json_out = false;
  int timeout_s = 10;
  std::vector<std::string> args;                  // positional
  std::vector<std::pair<std::string, std::string>> flags;  // --key=value after the command
  std::string Flag(std::string_view key, std::string fallback = "") const {
    for (const auto& [k, v] : flags) {
      if (k == key) return v;
    }
    return fallback;
  }
};

int Usage(const std::string& why) {
  if (!why.empty()) std::fprintf(stderr, "turnpikectl: %s\n\n", why.c_str());
  std::fputs(kUsage, stderr);
  return 2;
}

std::string Trim(std::string s) {
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.pop_back();
  size_t i = 0;
  while (i < s.size() && std::isspace(static_cast<unsigned char>(s[i]))) ++i;
  return s.substr(i);
}

struct Result {
  int status = 0;  // HTTP status, 0 when no response
  json body;
  std::string error;  // transport error or the API's error message
};

class Api {
 public:
  explicit Api(const Options& o) : o_(o), client_(o.url) {
    client_.set_connection_timeout(o.timeout_s, 0);
    client_.set_read_timeout(o.timeout_s, 0);
    client_.set_write_timeout(o.timeout_s, 0);
    if (!o.token.empty()) client_.set_bearer_token_auth(o.token);
  }

  Result Call(const std::string& method, const std::string& path, const json* body = nullptr) {
    const std::string payload = body != nullptr ? body->dump() : "";
    httplib::Result r = method == "GET"    ? client_.Get(path)
                        : method == "POST" ? client_.Post(path, payload, "application/json")
                                           : client_.Delete(path);
    Result out;
    if (!r) {
      out.error = fmt::format("cannot reach {}: {}", o_.url, httplib::to_string(r.error()));
      return out;
    }
    out.status = r->status;
    if (!r->body.empty()) {
      out.body = json::parse(r->body, nullptr, /*allow_exceptions=*/false);
    }
    if (out.status >= 400) {
      if (out.body.is_object() && out.body.contains("error") && out.body["error"].is_object()) {
        out.error = fmt::format("{} ({}): {}", out.status,
                                out.body["error"].value("code", std::string("?")),
                                out.body["error"].value("message", std::string("")));
      } else {
        out.error = fmt::format("HTTP {}", out.status);
      }
    }
    return out;
  }

  httplib::Client& client() { return client_; }

 private:
  const Options& o_;
  httplib::Client client_;
};

int Fail(const Result& r) {
  std::fprintf(stderr, "turnpikectl: %s\n", r.error.c_str());
  return 1;
}

void PrintJson(const json& j) { std::printf("%s\n", j.dump(2).c_str()); }

std::string Num(const json& j, const char* key) {
  if (!j.contains(key)) return "-";
  const json& v = j[key];
  if (v.is_number_float()) return fmt::format("{:.3f}", v.get<double>());
  if (v.is_string()) return v.get<std::string>();
  return v.dump();
}

// A plain text table: column widths from the longest cell.
void PrintTable(const std::vector<std::string>& head,
                const std::vector<std::vector<std::string>>& rows) {
  std::vector<size_t> w(head.size());
  for (size_t i = 0; i < head.size(); ++i) w[i] = head[i].size();
  for (const auto& r : rows) {
    for (size_t i = 0; i < r.size() && i < w.size(); ++i) w[i] = std::max(w[i], r[i].size());
  }
  auto line = [&](const std::vector<std::string>& r) {
    std::string out;
    for (size_t i = 0; i < r.size(); ++i) {
      out += r[i];
      if (i + 1 < r.size()) out += std::string(w[i] - r[i].size() + 2, ' ');
    }
    std::printf("%s\n", out.c_str());
  };
  line(head);
  for (const auto& r : rows) line(r);
}

int Status(Api& api, const Options& o) {
  Result node = api.Call("GET", "/v1/node");
  if (!node.error.empty()) return Fail(node);
  Result health = api.Call("GET", "/healthz");
  if (o.json_out) {
    PrintJson(json{{"node", node.body}, {"healthy", health.status == 200}});
    return 0;
  }
  const json& n = node.body;
  std::printf("version   %s (backend %s, %s workers)\n", Num(n, "version").c_str(),
              Num(n, "backend").c_str(), Num(n, "workers").c_str());
  std::printf("colour    %s\n", n.value("color", std::string()).empty()
                                    ? "-"
                                    : n["color"].get<std::string>().c_str());
  std::printf("state     %s, %s, %s\n", Num(n, "state").c_str(),
              n.value("ready", false) ? "ready" : "not ready",
              health.status == 200 ? "healthy" : "UNHEALTHY");
  const json& cap = n["capacity"];
  std::printf("allocs    %s (total quota %s, table %s)\n", Num(cap, "allocations").c_str(),
              Num(cap, "total_quota").c_str(), Num(cap, "max_allocations").c_str());
  std::vector<std::vector<std::string>> rows;
  for (const json& r : cap["relays"]) {
    rows.push_back({Num(r, "ip"), Num(r, "free_ports"), Num(r, "total_ports")});
  }
  std::printf("\n");
  PrintTable({"RELAY IP", "FREE PORTS", "PORTS"}, rows);
  rows.clear();
  for (const json& w : n["load"]["workers"]) {
    rows.push_back({Num(w, "worker"), Num(w, "busy_ratio"), Num(w, "allocations")});
  }
  std::printf("\n");
  PrintTable({"WORKER", "BUSY", "ALLOCATIONS"}, rows);
  return 0;
}

std::string Query(const Options& o) {
  std::string q;
  for (const char* key : {"user", "limit", "cursor"}) {
    const std::string v = o.Flag(key);
    if (v.empty()) continue;
    q += (q.empty() ? "?" : "&") + std::string(key) + "=" +
         httplib::detail::encode_query_param(v);
  }
  return q;
}

int Allocations(Api& api, const Options& o) {
  if (o.args.size() < 2) return Usage("allocations needs list, show ID or kill ID");
  const std::string& sub = o.args[1];
  if (sub == "list") {
    Result r = api.Call("GET", "/v1/allocations" + Query(o));
    if (!r.error.empty()) return Fail(r);
    if (o.json_out) {
      PrintJson(r.body);
      return 0;
    }
    std::vector<std::vector<std::string>> rows;
    for (const json& a : r.body["allocations"]) {
      rows.push_back({Num(a, "id"), Num(a, "username"), a["client"].value("address", ""),
                      Num(a, "relayed_address"), Num(a, "lifetime_left_s"),
                      std::to_string(a["permissions"].size()), std::to_string(a["channels"].size()),
                      Num(a["to_peer"], "packets"), Num(a["to_client"], "packets")});
    }
    PrintTable({"ID", "USER", "CLIENT", "RELAY", "TTL", "PERMS", "CHANS", "PKTS>PEER",
                "PKTS>CLIENT"},
               rows);
    std::printf("%s of %s", Num(r.body, "count").c_str(), Num(r.body, "total").c_str());
    if (r.body["next_cursor"].is_string()) {
      std::printf("; more with --cursor=%s", r.body["next_cursor"].get<std::string>().c_str());
    }
    std::printf("\n");
    return 0;
  }
  if (o.args.size() < 3) return Usage("allocations " + sub + " needs an allocation ID");
  const std::string path = "/v1/allocations/" + httplib::detail::encode_query_param(o.args[2]);
  if (sub == "show") {
    Result r = api.Call("GET", path);
    if (!r.error.empty()) return Fail(r);
    if (o.json_out) {
      PrintJson(r.body);
      return 0;
    }
    const json& a = r.body;
    std::printf("id          %s (worker %s)\n", Num(a, "id").c_str(), Num(a, "worker").c_str());
    std::printf("user        %s\n", Num(a, "username").c_str());
    std::printf("client      %s %s -> %s\n", a["client"].value("transport", "").c_str(),
                a["client"].value("address", "").c_str(), a["client"].value("server", "").c_str());
    std::printf("relay       %s (advertised %s)\n", Num(a, "relayed_address").c_str(),
                Num(a, "advertised_address").c_str());
    std::printf("lifetime    %s s left\n", Num(a, "lifetime_left_s").c_str());
    std::printf("to peer     %s packets, %s bytes\n", Num(a["to_peer"], "packets").c_str(),
                Num(a["to_peer"], "bytes").c_str());
    std::printf("to client   %s packets, %s bytes\n", Num(a["to_client"], "packets").c_str(),
                Num(a["to_client"], "bytes").c_str());
    for (const json& p : a["permissions"]) {
      std::printf("permission  %s (%s s left)\n", Num(p, "ip").c_str(),
                  Num(p, "expires_in_s").c_str());
    }
    for (const json& c : a["channels"]) {
      std::printf("channel     %s -> %s (%s s left)\n", Num(c, "number").c_str(),
                  Num(c, "peer").c_str(), Num(c, "expires_in_s").c_str());
    }
    return 0;
  }
  if (sub == "kill") {
    Result r = api.Call("DELETE", path);
    if (!r.error.empty()) return Fail(r);
    if (o.json_out) {
      PrintJson(json{{"killed", o.args[2]}});
    } else {
      std::printf("allocation %s ended\n", o.args[2].c_str());
    }
    return 0;
  }
  return Usage("unknown allocations command '" + sub + "'");
}

int Credentials(Api& api, const Options& o) {
  if (o.args.size() < 2) return Usage("credentials needs a USER");
  json body{{"user", o.args[1]}};
  const std::string ttl = o.Flag("ttl");
  if (!ttl.empty()) {
    char* end = nullptr;
    const long long v = std::strtoll(ttl.c_str(), &end, 10);
    if (end == ttl.c_str() || *end != '\0') return Usage("--ttl must be a number of seconds");
    body["ttl"] = v;
  }
  Result r = api.Call("POST", "/v1/credentials", &body);
  if (!r.error.empty()) return Fail(r);
  if (o.json_out) {
    PrintJson(r.body);
    return 0;
  }
  std::printf("username  %s\npassword  %s\nttl       %s s\n", Num(r.body, "username").c_str(),
              Num(r.body, "password").c_str(), Num(r.body, "ttl").c_str());
  for (const json& u : r.body["uris"]) std::printf("uri       %s\n", u.get<std::string>().c_str());
  return 0;
}

int Drain(Api& api, const Options& o) {
  const std::string what = o.args.size() > 1 ? o.args[1] : "status";
  Result r;
  if (what == "on") {
    r = api.Call("POST", "/v1/drain");
  } else if (what == "off") {
    r = api.Call("DELETE", "/v1/drain");
  } else if (what == "status") {
    r = api.Call("GET", "/v1/drain");
  } else {
    return Usage("drain takes on, off or status");
  }
  if (!r.error.empty()) return Fail(r);
  if (o.json_out) {
    PrintJson(r.body);
  } else {
    std::printf("draining: %s%s\n", r.body.value("draining", false) ? "yes" : "no",
                r.body.value("shutting_down", false) ? " (shutting down)" : "");
  }
  return 0;
}

int Reload(Api& api, const Options& o) {
  Result r = api.Call("POST", "/v1/config/reload");
  if (!r.error.empty()) return Fail(r);
  if (o.json_out) {
    PrintJson(r.body);
    return 0;
  }
  auto list = [](const json& a) {
    std::string s;
    for (const json& v : a) s += (s.empty() ? "" : ", ") + v.get<std::string>();
    return s.empty() ? std::string("none") : s;
  };
  std::printf("reloaded; changed: %s\n", list(r.body["applied"]).c_str());
  if (!r.body["ignored"].empty()) {
    std::printf("not reloadable (restart to apply): %s\n", list(r.body["ignored"]).c_str());
  }
  return 0;
}

int Events(Api& api, const Options&) {
  httplib::Client& c = api.client();
  c.set_read_timeout(60, 0);  // the server sends a keep-alive comment every 15 s
  auto res = c.Get("/v1/events", [](const char* data, size_t len) {
    std::fwrite(data, 1, len, stdout);
    std::fflush(stdout);
    return true;
  });
  if (!res) {
    std::fprintf(stderr, "turnpikectl: event stream ended: %s\n",
                 httplib::to_string(res.error()).c_str());
    return 1;
  }
  if (res->status != 200) {
    std::fprintf(stderr, "turnpikectl: HTTP %d\n", res->status);
    return 1;
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
  if (const char* u = std::getenv("TURNPIKE_CONTROL_URL")) o.url = u;
  if (const char* t = std::getenv("TURNPIKE_CONTROL_TOKEN")) o.token = Trim(t);
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "-h" || a == "--help") {
      std::fputs(kUsage, stdout);
      return 0;
    }
    if (a.rfind("--", 0) != 0) {
      o.args.push_back(a);
      continue;
    }
    const size_t eq = a.find('=');
    const std::string key = a.substr(2, eq == std::string::npos ? std::string::npos : eq - 2);
    const std::string value = eq == std::string::npos ? "" : a.substr(eq + 1);
    if (key == "json") {
      o.json_out = true;
    } else if (key == "url") {
      o.url = value;
    } else if (key == "token") {
      o.token = value;
    } else if (key == "token-file") {
      std::ifstream in(value);
      if (!in) return Usage("cannot read --token-file " + value);
      std::stringstream ss;
      ss << in.rdbuf();
      o.token = Trim(ss.str());
    } else if (key == "timeout") {
      o.timeout_s = std::atoi(value.c_str());
      if (o.timeout_s <= 0) return Usage("--timeout must be a positive number of seconds");
    } else if (key == "user" || key == "limit" || key == "cursor" || key == "ttl") {
      if (eq == std::string::npos) return Usage("--" + key + " needs =VALUE");
      o.flags.emplace_back(key, value);
    } else {
      return Usage("unknown option " + a);
    }
  }
  if (o.args.empty()) return Usage("");
  Api api(o);
  const std::string& cmd = o.args[0];
  if (cmd == "status") return Status(api, o);
  if (cmd == "allocations" || cmd == "allocs") return Allocations(api, o);
  if (cmd == "credentials") return Credentials(api, o);
  if (cmd == "drain") return Drain(api, o);
  if (cmd == "reload") return Reload(api, o);
  if (cmd == "events") return Events(api, o);
  return Usage("unknown command '" + cmd + "'");
}
