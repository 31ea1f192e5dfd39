// The HTTP/1.1 control plane (cpp-httplib): health probes, Prometheus metrics, the /v1 REST API
// for orchestrators and the Server-Sent Events stream. Runs on its own small thread pool, never
// on a data-plane worker; anything that needs a worker's tables goes through NodeController,
// which queues a command to that worker and waits with a timeout.
//
//   HTTP thread --> route + auth + parse (here) --> NodeController --> worker command queue
//                                                                    --> reply (promise)
//   absl::Status from below is mapped to an HTTP status once, in Reply().
#pragma once

#include <cstdint>
#include <memory>
#include <thread>

#include "absl/status/statusor.h"
#include "control/node_controller.h"
#include "turn/net/socket_address.h"

namespace httplib {
class Server;
}

namespace turnpike::control {

struct HttpLimits {
  size_t max_body_bytes = 64 * 1024;  // larger bodies get 413
  int read_timeout_s = 5;
  int write_timeout_s = 5;
  size_t threads = 8;
  size_t max_event_streams = 4;  // concurrent /v1/events (each holds a thread)
};

class HttpServer {
 public:
  explicit HttpServer(NodeController* node, HttpLimits limits = {});
  ~HttpServer();
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  // Binds (port 0: any free port) and starts serving on a background thread. Returns the port.
  absl::StatusOr<uint16_t> Start(const IpAddress& ip, uint16_t port);
  // Ends event streams, stops accepting, waits for handlers to finish.
  void Stop();

 private:
  void Routes();

  NodeController* node_;
  HttpLimits limits_;
  std::unique_ptr<httplib::Server> server_;
  std::thread thread_;
  int listen_fd_ = -1;
};

}  // namespace turnpike::control
