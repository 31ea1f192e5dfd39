// turnpike-loadgen: TURN relay load generator on kernel UDP sockets. Sets up allocations with
// channel bindings, relays ChannelData and peer datagrams through the server at a fixed rate,
// and prints delivery, loss, one-way latency and CPU figures; used against turnpiked and coturn
// by perf/compare_coturn.sh. Loopback only.
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <fstream>
#include <optional>
#include <sstream>
#include <string>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "perf/loadgen/control.h"
#include "perf/loadgen/options.h"
#include "perf/loadgen/traffic.h"

namespace turnpike::loadgen {
namespace {

// utime + stime of a whole process (all threads), in seconds, from /proc/PID/stat fields 14-15.
std::optional<double> ProcessCpuSeconds(int pid) {
  std::ifstream in(absl::StrCat("/proc/", pid, "/stat"));
  std::string line;
  if (!std::getline(in, line)) return std::nullopt;
  size_t close = line.rfind(')');  // the command name may contain spaces and parentheses
  if (close == std::string::npos) return std::nullopt;
  std::istringstream rest(line.substr(close + 2));
  std::string field;
  unsigned long long utime = 0, stime = 0;
  for (int i = 3; i <= 15 && rest >> field; ++i) {
    if (i == 14) utime = std::stoull(field);
    if (i == 15) stime = std::stoull(field);
  }
  return static_cast<double>(utime + stime) / static_cast<double>(sysconf(_SC_CLK_TCK));
}

// Per-CPU busy and softirq seconds from /proc/stat; index 0 is the "cpu" total line. Softirq
// time matters on loopback: part of the receive path runs there, charged to no process.
struct CpuSample {
  std::vector<double> busy;
  std::vector<double> softirq;
  std::vector<double> total;
};

CpuSample SystemCpu() {
  CpuSample s;
  std::ifstream in("/proc/stat");
  std::string line;
  const double hz = static_cast<double>(sysconf(_SC_CLK_TCK));
  while (std::getline(in, line)) {
    if (line.rfind("cpu", 0) != 0) break;
    std::istringstream f(line);
    std::string name;
    unsigned long long user = 0, nice = 0, sys = 0, idle = 0, iowait = 0, irq = 0, softirq = 0,
                       steal = 0;
    f >> name >> user >> nice >> sys >> idle >> iowait >> irq >> softirq >> steal;
    double busy = static_cast<double>(user + nice + sys + irq + softirq + steal) / hz;
    s.busy.push_back(busy);
    s.softirq.push_back(static_cast<double>(softirq) / hz);
    s.total.push_back(busy + static_cast<double>(idle + iowait) / hz);
  }
  return s;
}

double SelfCpuSeconds() {
  timespec ts;
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) / 1e9;
}

void SleepUntil(int64_t t_ns) {
  timespec ts{static_cast<time_t>(t_ns / 1000000000), static_cast<long>(t_ns % 1000000000)};
  while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, nullptr) == EINTR) {
  }
}

std::string ErrorCodes(const ControlStats& s) {
  std::vector<std::string> parts;
  for (auto& [code, count] : s.error_codes) {
    std::string name = code == -1 ? "timeout" : code == -2 ? "malformed" : absl::StrCat(code);
    parts.push_back(absl::StrCat(name, "x", count));
  }
  return parts.empty() ? "none" : absl::StrJoin(parts, ",");
}

void RaiseFdLimit(int needed) {
  rlimit rl;
  if (getrlimit(RLIMIT_NOFILE, &rl) != 0) return;
  rlim_t want = static_cast<rlim_t>(needed) + 64;
  if (rl.rlim_cur >= want) return;
  rl.rlim_cur = std::min(rl.rlim_max, want);
  setrlimit(RLIMIT_NOFILE, &rl);
}

std::string Fmt(double v, int decimals = 1) { return absl::StrFormat("%.*f", decimals, v); }

int Main(int argc, char** argv) {
  auto parsed = ParseOptions(argc, argv);
  if (!parsed.ok()) {
    if (absl::IsCancelled(parsed.status())) {
      fputs(kUsage, stdout);
      return 0;
    }
    fprintf(stderr, "turnpike-loadgen: %s\n%s", std::string(parsed.status().message()).c_str(),
            "run with --help for the options\n");
    return 2;
  }
  const Options& o = *parsed;
  RaiseFdLimit(2 * o.allocations);
  const char* dir_name = o.directions == kBoth           ? "both"
                         : o.directions == kClientToPeer ? "c2p"
                                                         : "p2c";
  printf(
      "loadgen: server=%s allocations=%d threads=%d rate=%.0f pkt/s total (direction=%s%s) "
      "size=%d warmup=%.1fs duration=%.1fs drain=%.1fs\n",
      o.server.ToString().c_str(), o.allocations, o.threads, o.rate, dir_name,
      o.directions == kBoth ? absl::StrFormat(", %.0f each", o.rate / 2).c_str() : "", o.size,
      o.warmup, o.duration, o.drain);

  auto allocs_or = CreateAllocations(o);
  if (!allocs_or.ok()) {
    fprintf(stderr, "turnpike-loadgen: %s\n", std::string(allocs_or.status().message()).c_str());
    return 1;
  }
  std::vector<Allocation>& allocs = *allocs_or;

  ControlStats setup = RunSetup(allocs, o);
  printf(
      "setup: %d/%d allocations ready in %.3f s (%.0f allocations/s), failed=%d "
      "[%s], retransmits=%d, integrity_failures=%d, reopened_after_437=%d\n",
      setup.ok, o.allocations, setup.seconds, setup.seconds > 0 ? setup.ok / setup.seconds : 0.0,
      setup.failed, ErrorCodes(setup).c_str(), setup.retransmits, setup.integrity_failures,
      setup.reopened);
  if (!o.realm.empty()) {
    for (const auto& a : allocs) {
      if (a.turn.have_key && a.turn.realm != o.realm) {
        printf("warning: server realm \"%s\" differs from --realm=%s\n", a.turn.realm.c_str(),
               o.realm.c_str());
        break;
      }
    }
  }
  if (setup.ok == 0) {
    fprintf(stderr, "turnpike-loadgen: no allocation could be set up\n");
    return 1;
  }
  // The peer sockets now talk to their relayed address only, so stray datagrams are filtered
  // by the kernel and the sender can use plain send().
  sockaddr_storage ss;
  for (auto& a : allocs) {
    if (!a.ready) continue;
    socklen_t len = a.relayed.ToSockaddr(&ss);
    if (connect(a.peer_fd, reinterpret_cast<sockaddr*>(&ss), len) != 0) {
      fprintf(stderr, "turnpike-loadgen: connect peer to %s: %s\n", a.relayed.ToString().c_str(),
              strerror(errno));
      a.ready = false;
    }
  }

  Timeline tl;
  tl.start_ns = MonotonicNs() + 20000000;
  tl.window_start_ns = tl.start_ns + static_cast<int64_t>(o.warmup * 1e9);
  tl.window_end_ns = tl.window_start_ns + static_cast<int64_t>(o.duration * 1e9);
  tl.stop_ns = tl.window_end_ns + static_cast<int64_t>(o.drain * 1e9);

  // The traffic threads run on their own; this thread only samples CPU at the window edges.
  std::optional<double> server_cpu0, server_cpu1;
  double self_cpu0 = 0, self_cpu1 = 0;
  TrafficResult traffic;
  std::thread runner([&] { traffic = RunTraffic(allocs, o, tl); });
  SleepUntil(tl.window_start_ns);
  self_cpu0 = SelfCpuSeconds();
  if (o.server_pid > 0) server_cpu0 = ProcessCpuSeconds(o.server_pid);
  CpuSample sys0 = SystemCpu();
  SleepUntil(tl.window_end_ns);
  self_cpu1 = SelfCpuSeconds();
  if (o.server_pid > 0) server_cpu1 = ProcessCpuSeconds(o.server_pid);
  CpuSample sys1 = SystemCpu();
  runner.join();

  const double window = o.duration;
  auto report_dir = [&](const char* name, const DirectionStats& d) {
    if (d.sent == 0 && d.received == 0) return;
    double loss = d.sent_window ? 100.0 * (1.0 - static_cast<double>(d.received_window) /
                                                     static_cast<double>(d.sent_window))
                                : 0.0;
    printf(
        "%s: offered %.0f pkt/s, delivered %.0f pkt/s, loss %.3f%%, one-way latency "
        "p50 %.1f us p99 %.1f us max %.1f us (%llu sent, %llu received in window; "
        "send_errors=%llu misrouted=%llu malformed=%llu silent_allocations=%llu)\n",
        name, d.sent_window / window, d.received_window / window, loss,
        d.latency.Quantile(0.5) / 1e3, d.latency.Quantile(0.99) / 1e3,
        static_cast<double>(d.latency.max_ns()) / 1e3,
        static_cast<unsigned long long>(d.sent_window),
        static_cast<unsigned long long>(d.received_window),
        static_cast<unsigned long long>(d.send_errors),
        static_cast<unsigned long long>(d.misrouted), static_cast<unsigned long long>(d.malformed),
        static_cast<unsigned long long>(d.silent_allocations));
  };
  report_dir("c2p (ChannelData client->peer)", traffic.c2p);
  report_dir("p2c (UDP peer->client)", traffic.p2c);
  DirectionStats all;
  all.Merge(traffic.c2p);
  all.Merge(traffic.p2c);
  double offered_pps = all.sent_window / window;
  double delivered_pps = all.received_window / window;
  double loss_pct = all.sent_window ? 100.0 * (1.0 - static_cast<double>(all.received_window) /
                                                         static_cast<double>(all.sent_window))
                                    : 0.0;
  double p50 = all.latency.Quantile(0.5) / 1e3, p99 = all.latency.Quantile(0.99) / 1e3;
  double gen_cpu = self_cpu1 - self_cpu0;
  printf(
      "total: target %.0f pkt/s, offered %.0f pkt/s, delivered %.0f pkt/s, loss %.3f%%, "
      "p50 %.1f us, p99 %.1f us\n",
      o.rate, offered_pps, delivered_pps, loss_pct, p50, p99);
  printf("generator: %.2f CPU s over the %.1f s window (%.0f%% of one core), send via %s\n",
         gen_cpu, window, 100 * gen_cpu / window, traffic.used_uring ? "io_uring" : "send()");
  std::string server_cpu_s = "na", per_cpu = "na";
  if (server_cpu0 && server_cpu1) {
    double cpu = *server_cpu1 - *server_cpu0;
    server_cpu_s = Fmt(cpu, 2);
    per_cpu = cpu > 0 ? Fmt(all.received_window / cpu, 0) : "inf";
    printf(
        "server: pid %d used %.2f CPU s over the window (%.0f%% of one core), %s relayed "
        "packets per server CPU-second\n",
        o.server_pid, cpu, 100 * cpu / window, per_cpu.c_str());
  } else if (o.server_pid > 0) {
    printf("server: could not read /proc/%d/stat\n", o.server_pid);
  }

  // Everything else the machine did in the window: other processes (a shared box), softirq
  // work in ksoftirqd. Big numbers here mean the figures above are not clean.
  double other_cpu = 0;
  if (sys0.busy.size() == sys1.busy.size() && !sys0.busy.empty()) {
    std::string per_cpu_line;
    for (size_t i = 1; i < sys0.busy.size(); ++i) {
      double span = sys1.total[i] - sys0.total[i];
      if (span <= 0) continue;
      per_cpu_line += absl::StrFormat(" cpu%d busy %.0f%% (softirq %.0f%%)", i - 1,
                                      100 * (sys1.busy[i] - sys0.busy[i]) / span,
                                      100 * (sys1.softirq[i] - sys0.softirq[i]) / span);
    }
    double busy = sys1.busy[0] - sys0.busy[0];
    double server = server_cpu0 && server_cpu1 ? *server_cpu1 - *server_cpu0 : 0;
    other_cpu = std::max(0.0, busy - gen_cpu - server);
    printf("system:%s; other CPU (not generator%s) %.2f s\n", per_cpu_line.c_str(),
           server_cpu0 ? ", not server" : "", other_cpu);
  }

  int torn_down = 0, teardown_failed = 0;
  std::string teardown_errors = "none";
  if (o.teardown) {
    ControlStats td = RunTeardown(allocs, o);
    torn_down = td.ok;
    teardown_failed = td.failed;
    teardown_errors = ErrorCodes(td);
    printf("teardown: %d/%d Refresh(lifetime=0) succeeded, failed=%d [%s] in %.3f s\n", td.ok,
           setup.ok, td.failed, teardown_errors.c_str(), td.seconds);
  }
  for (auto& a : allocs) {
    close(a.client_fd);
    close(a.peer_fd);
  }

  printf(
      "RESULT offered_pps=%.0f delivered_pps=%.0f loss_pct=%.3f p50_us=%.1f p99_us=%.1f "
      "server_cpu_s=%s pkts_per_server_cpu_s=%s gen_cpu_s=%.2f allocations_ready=%d "
      "c2p_p50_us=%.1f c2p_p99_us=%.1f p2c_p50_us=%.1f p2c_p99_us=%.1f other_cpu_s=%.2f\n",
      offered_pps, delivered_pps, loss_pct, p50, p99, server_cpu_s.c_str(), per_cpu.c_str(),
      gen_cpu, setup.ok, traffic.c2p.latency.Quantile(0.5) / 1e3,
      traffic.c2p.latency.Quantile(0.99) / 1e3, traffic.p2c.latency.Quantile(0.5) / 1e3,
      traffic.p2c.latency.Quantile(0.99) / 1e3, other_cpu);
  if (o.json) {
    auto js = [](const std::string& v) { return v == "na" ? std::string("null") : v; };
    printf(
        "{\"target_pps\":%.0f,\"offered_pps\":%.0f,\"delivered_pps\":%.0f,\"loss_pct\":%.3f,"
        "\"p50_us\":%.1f,\"p99_us\":%.1f,\"c2p_p50_us\":%.1f,\"c2p_p99_us\":%.1f,"
        "\"p2c_p50_us\":%.1f,\"p2c_p99_us\":%.1f,\"server_cpu_s\":%s,"
        "\"pkts_per_server_cpu_s\":%s,\"gen_cpu_s\":%.2f,\"allocations\":%d,"
        "\"allocations_ready\":%d,\"setup_s\":%.3f,\"setup_failed\":%d,"
        "\"other_cpu_s\":%.2f,\"teardown_ok\":%d,\"teardown_failed\":%d,\"size\":%d,\"duration_s\":"
        "%.1f}\n",
        o.rate, offered_pps, delivered_pps, loss_pct, p50, p99,
        traffic.c2p.latency.Quantile(0.5) / 1e3, traffic.c2p.latency.Quantile(0.99) / 1e3,
        traffic.p2c.latency.Quantile(0.5) / 1e3, traffic.p2c.latency.Quantile(0.99) / 1e3,
        js(server_cpu_s).c_str(), js(per_cpu).c_str(), gen_cpu, o.allocations, setup.ok,
        setup.seconds, setup.failed, other_cpu, torn_down, teardown_failed, o.size, o.duration);
  }
  fflush(stdout);
  return setup.ok == o.allocations ? 0 : 3;
}

}  // namespace
}  // namespace turnpike::loadgen

int main(int argc, char** argv) { return turnpike::loadgen::Main(argc, argv); }
