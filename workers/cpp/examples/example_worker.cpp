// hose-cpp-worker: an example hose worker in C++.
//
//   hose-cpp-worker --backend tcp://127.0.0.1:5556 --job echo
//   hose-cpp-worker --job sha256 --param rounds=5000 --service sha256 --concurrency 4
//
// Jobs (--job):
//   echo    return the payload
//   sha256  hash the payload, then the digest again, rounds times in all
//           (header "rounds", else --param rounds=N, else 1000): the same
//           answer as `hose worker -handler sha256:N` and the Python example
//   demo    the conformance tests' handler: dispatch on the service name's
//           first dot-separated word: echo, lang, sha256, fail, sleep, spin,
//           headers, params
//
// Exit codes: 0 stopped by SIGTERM/SIGINT or retired, 1 error, 2 usage,
// 3 broker lost with --exit-on-broker-loss.
#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iostream>
#include <map>
#include <memory>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "hose/worker.hpp"
#include "sha256.hpp"

namespace {

using std::chrono::milliseconds;

constexpr int kExitOK = 0, kExitError = 1, kExitUsage = 2, kExitBrokerLost = 3;

const char kUsage[] =
    "Usage: hose-cpp-worker [flags]\n"
    "\n"
    "Runs an example hose worker. It registers with the broker, heartbeats\n"
    "while jobs run, registers again when the broker restarts, and stops\n"
    "gracefully on SIGTERM or SIGINT (a second signal stops at once).\n"
    "\n"
    "Flags:\n"
    "  --backend ENDPOINT     the broker's backend (default tcp://127.0.0.1:5556)\n"
    "  --job NAME             echo (default), sha256 or demo\n"
    "  --service NAME         a service to serve, repeatable (default: default)\n"
    "  --concurrency N        jobs run at once (default: hardware threads)\n"
    "  --prefetch N           jobs held beyond --concurrency (default: equal to it; -1: none)\n"
    "  --param KEY=VALUE      handed to every job, repeatable\n"
    "  --max-age D            retire after D (e.g. 30s, 500ms; 0: never)\n"
    "  --max-age-delta D      add a random part up to D to --max-age\n"
    "  --max-jobs N           retire after N jobs (0: never)\n"
    "  --drain-timeout D      on a signal or retirement, how long jobs get (default 30s)\n"
    "  --exit-on-broker-loss  exit 3 when the broker goes away\n"
    "  --curve-server-key K   the broker's CURVE public key (Z85, or a .pub file)\n"
    "  --curve-key FILE       this worker's secret key file (hose keygen; default: a fresh pair)\n"
    "  --quiet                log warnings and errors only\n";

// read_key returns a Z85 key given literally (40 characters) or as the
// path of a file holding one (hose keygen writes NAME.key and NAME.pub).
std::string read_key(const std::string& s) {
    if (s.size() == 40) return s;
    std::ifstream in(s);
    std::string k;
    if (!(in >> k) || k.size() != 40) throw std::runtime_error("no Z85 CURVE key in " + s);
    return k;
}

std::atomic<hose::Worker*> g_worker{nullptr};
std::atomic<int> g_signals{0};

extern "C" void on_signal(int) {
    int n = g_signals.fetch_add(1) + 1;
    if (hose::Worker* w = g_worker.load()) w->stop(n > 1);
}

struct UsageError : std::runtime_error {
    using std::runtime_error::runtime_error;
};

milliseconds parse_duration(const std::string& s) {
    char* end = nullptr;
    double v = std::strtod(s.c_str(), &end);
    std::string unit = end ? end : "";
    double scale;
    if (unit.empty() || unit == "s")
        scale = 1000;
    else if (unit == "ms")
        scale = 1;
    else if (unit == "m")
        scale = 60000;
    else if (unit == "h")
        scale = 3600000;
    else
        throw UsageError("bad duration " + s + " (want e.g. 30s, 500ms, 2m)");
    if (end == s.c_str() || v < 0) throw UsageError("bad duration " + s);
    return milliseconds(static_cast<long long>(v * scale + 0.5));
}

long parse_int(const std::string& s, const char* what) {
    char* end = nullptr;
    long v = std::strtol(s.c_str(), &end, 10);
    if (s.empty() || *end != '\0' || v < 0) throw UsageError(std::string("bad ") + what + ": " + s);
    return v;
}

std::string whoami() { return "cpp " + std::to_string(getpid()); }

long rounds_of(const hose::Job& job) {
    std::string r(job.header("rounds"));
    if (r.empty()) r = job.param("rounds", "1000");
    long n = std::strtol(r.c_str(), nullptr, 10);
    return n < 1 ? 1 : n;
}

std::string echo(const hose::Job& job) { return job.payload; }

std::string sha256(const hose::Job& job) { return example::sha256_rounds(job.payload, rounds_of(job)); }

long payload_ms(const hose::Job& job) { return std::strtol(job.payload.c_str(), nullptr, 10); }

// spin burns CPU (FNV-1a) for the number of milliseconds in the payload.
std::string spin(const hose::Job& job) {
    auto end = std::chrono::steady_clock::now() + milliseconds(payload_ms(job));
    std::uint64_t h = 0xcbf29ce484222325ull, n = 0;
    while (std::chrono::steady_clock::now() < end) {
        for (int i = 0; i < 1000; i++, n++) {
            std::uint64_t x = n;
            for (int b = 0; b < 8; b++, x >>= 8) h = (h ^ (x & 0xff)) * 0x100000001b3ull;
        }
    }
    char buf[64];
    std::snprintf(buf, sizeof buf, " spin %llu %016llx", static_cast<unsigned long long>(n),
                  static_cast<unsigned long long>(h));
    return whoami() + buf;
}

std::string demo(const hose::Job& job) {
    std::string op = job.service.substr(0, job.service.find('.'));
    if (op == "echo") return echo(job);
    if (op == "lang") return whoami();
    if (op == "sha256") return sha256(job);
    if (op == "fail") throw std::runtime_error("fail: " + job.payload);
    if (op == "sleep") {
        std::this_thread::sleep_for(std::min(milliseconds(payload_ms(job)), job.time_left()));
        return whoami();
    }
    if (op == "spin") return spin(job);
    if (op == "headers" || op == "params") {
        std::map<std::string, std::string> kv;
        if (op == "headers") {
            for (const auto& [k, v] : job.headers) kv.emplace(k, v);  // first value wins
        } else if (job.params) {
            kv = *job.params;
        }
        std::string out;
        for (const auto& [k, v] : kv) out += k + "=" + v + "\n";
        return out;
    }
    throw std::out_of_range("demo: no job named '" + op + "' (service '" + job.service + "')");
}

// DemoWorker shows the other way to write a worker: subclass hose::Worker
// and override handle() (--job demo; echo and sha256 pass a function).
class DemoWorker : public hose::Worker {
public:
    explicit DemoWorker(hose::Config cfg) : hose::Worker(std::move(cfg)) {}

protected:
    std::string handle(const hose::Job& job) override { return demo(job); }
};

int run(int argc, char** argv) {
    hose::Config cfg;
    std::string job = "echo";
    bool quiet = false;
    for (int i = 1; i < argc; i++) {
        std::string a = argv[i];
        if (a == "-h" || a == "--help") {
            std::cout << kUsage;
            return kExitOK;
        }
        auto value = [&]() -> std::string {
            if (i + 1 >= argc) throw UsageError(a + " needs a value");
            return argv[++i];
        };
        if (a == "--backend")
            cfg.backend = value();
        else if (a == "--job")
            job = value();
        else if (a == "--service")
            cfg.services.push_back(value());
        else if (a == "--concurrency")
            cfg.concurrency = static_cast<int>(parse_int(value(), "concurrency"));
        else if (a == "--prefetch") {
            std::string v = value();
            cfg.prefetch = v == "-1" ? -1 : static_cast<int>(parse_int(v, "prefetch"));
        } else if (a == "--param") {
            std::string kv = value();
            auto eq = kv.find('=');
            if (eq == std::string::npos || eq == 0) throw UsageError("--param wants KEY=VALUE, got " + kv);
            cfg.params[kv.substr(0, eq)] = kv.substr(eq + 1);
        } else if (a == "--max-age")
            cfg.max_age = parse_duration(value());
        else if (a == "--max-age-delta")
            cfg.max_age_delta = parse_duration(value());
        else if (a == "--max-jobs")
            cfg.max_jobs = static_cast<std::uint64_t>(parse_int(value(), "max-jobs"));
        else if (a == "--drain-timeout")
            cfg.drain_timeout = parse_duration(value());
        else if (a == "--exit-on-broker-loss")
            cfg.exit_on_broker_loss = true;
        else if (a == "--curve-server-key")
            cfg.curve_server_key = read_key(value());
        else if (a == "--curve-key")
            cfg.curve_secret_key = read_key(value());
        else if (a == "--quiet")
            quiet = true;
        else
            throw UsageError("unknown flag " + a);
    }
    hose::Handler handler;
    if (job == "echo")
        handler = echo;
    else if (job == "sha256")
        handler = sha256;
    else if (job != "demo")
        throw UsageError("unknown job " + job + " (want echo, sha256 or demo)");

    const int pid = getpid();
    cfg.logger = [pid, quiet](hose::LogLevel level, const std::string& msg) {
        static const char* const names[] = {"DEBUG", "INFO", "WARN", "ERROR"};
        if (quiet && level < hose::LogLevel::kWarn) return;
        std::fprintf(stderr, "%s hose-cpp-worker[%d]: %s\n", names[static_cast<int>(level)], pid, msg.c_str());
    };
    std::unique_ptr<hose::Worker> worker;
    if (handler)
        worker = std::make_unique<hose::Worker>(cfg, handler);
    else
        worker = std::make_unique<DemoWorker>(cfg);
    hose::Worker& w = *worker;
    g_worker.store(&w);
    struct sigaction sa {};
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, nullptr);
    sigaction(SIGINT, &sa, nullptr);
    hose::Outcome out;
    try {
        out = w.run();
    } catch (const hose::BrokerLost& e) {
        std::fprintf(stderr, "hose-cpp-worker: %s\n", e.what());
        std::fflush(stderr);
        std::_Exit(kExitBrokerLost);  // jobs may still run on detached threads
    }
    std::fprintf(stderr, "INFO hose-cpp-worker[%d]: exiting: %s\n", pid,
                 out == hose::Outcome::kRetired ? "retired" : "stopped");
    std::fflush(stderr);
    // Jobs abandoned at the drain timeout may still run on detached
    // threads that use w: leave without destroying it.
    std::_Exit(kExitOK);
}

}  // namespace

int main(int argc, char** argv) {
    try {
        return run(argc, argv);
    } catch (const UsageError& e) {
        std::fprintf(stderr, "hose-cpp-worker: %s\n\n%s", e.what(), kUsage);
        return kExitUsage;
    } catch (const std::exception& e) {
        std::fprintf(stderr, "hose-cpp-worker: %s\n", e.what());
        return kExitError;
    }
}
