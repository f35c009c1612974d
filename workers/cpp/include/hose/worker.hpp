// hose::Worker: a hose worker in C++17 on libzmq/cppzmq.
//
// The thread that calls run() owns the ZeroMQ socket: it registers with the
// broker, heartbeats, reads jobs and sends results. Jobs run on a pool of
// `concurrency` threads, so a long job never stops the heartbeats. run()
// re-registers when the broker says DISCONNECT, opens a fresh connection
// when the broker goes silent, and stops gracefully (DRAIN, finish the jobs
// held, DISCONNECT) after stop(), at max_age or after max_jobs.
//
//     hose::Config cfg;
//     cfg.backend = "tcp://127.0.0.1:5556";
//     cfg.services = {"upper"};
//     hose::Worker w(cfg, [](const hose::Job& job) {
//         std::string s = job.payload;
//         for (auto& c : s) c = std::toupper(static_cast<unsigned char>(c));
//         return s;
//     });
//     w.run();
//
// A handler that throws answers its job with a worker error whose message is
// "<exception type>: <what()>". The wire protocol is docs/PROTOCOL.md.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace hose {

inline constexpr const char* kVersion = "0.1.0";
inline constexpr const char* kDefaultBackend = "tcp://127.0.0.1:5556";

// Job is one job handed to a handler; it is valid until the handler returns.
struct Job {
    std::uint64_t id = 0;    // the broker's job id (unique per broker run)
    std::string service;     // the service it was sent to ("default" when none)
    std::string payload;     // the caller's data
    std::vector<std::pair<std::string, std::string>> headers;  // in wire order
    std::chrono::steady_clock::time_point deadline;  // when the caller stops waiting
    bool idempotent = false;                          // the caller allows a second run
    const std::map<std::string, std::string>* params = nullptr;  // Config::params

    // header returns the first value of key, or "".
    std::string_view header(std::string_view key) const;
    // param returns Config::params[key], or def.
    std::string param(const std::string& key, const std::string& def = "") const;
    // time_left is the time until the deadline (zero when past).
    std::chrono::milliseconds time_left() const;
};

// Handler runs a job and returns its result. It is called from several
// threads at once (up to Config::concurrency).
using Handler = std::function<std::string(const Job&)>;

enum class LogLevel { kDebug, kInfo, kWarn, kError };

struct Config {
    std::string backend = kDefaultBackend;  // the broker's backend endpoint
    std::vector<std::string> services;      // empty: {"default"}
    int concurrency = 0;                    // jobs at once; 0: hardware threads
    // Jobs accepted beyond concurrency and queued here, so a thread that
    // frees up starts the next job without a round trip to the broker. The
    // broker never sends more than concurrency + prefetch (the capacity in
    // READY). 0: equal to concurrency; negative: none.
    int prefetch = 0;
    std::map<std::string, std::string> params;  // handed to every job
    // Retire after max_age (plus a random part up to max_age_delta) or after
    // max_jobs jobs; zero: never. A supervisor then starts a fresh worker.
    std::chrono::milliseconds max_age{0};
    std::chrono::milliseconds max_age_delta{0};
    std::uint64_t max_jobs = 0;
    std::chrono::milliseconds drain_timeout{30000};  // jobs get this long when stopping
    std::chrono::milliseconds reconnect_min{100};    // backoff bounds after broker loss
    std::chrono::milliseconds reconnect_max{5000};
    std::chrono::milliseconds heartbeat{500};  // until the broker's WELCOME gives its own
    int liveness = 4;
    bool exit_on_broker_loss = false;  // run() throws BrokerLost instead of reconnecting
    // CURVE: the broker's public key (Z85, 40 characters) encrypts the
    // connection and authenticates the broker; curve_secret_key is this
    // worker's (checked against the broker's worker allow-list), a fresh
    // pair when empty.
    std::string curve_server_key;
    std::string curve_secret_key;
    std::string version;               // free text in READY; default "hose-cpp/<kVersion>"
    // logger receives the worker's log lines; default: none.
    std::function<void(LogLevel, const std::string&)> logger;
};

// Why run() returned.
enum class Outcome {
    kStopped,  // stop() was called
    kRetired,  // max_age or max_jobs was reached
};

// BrokerLost is thrown by run() when the broker goes away and
// Config::exit_on_broker_loss is set.
class BrokerLost : public std::runtime_error {
public:
    using std::runtime_error::runtime_error;
};

class Worker {
public:
    // Worker runs jobs with handler. Throws std::invalid_argument for a bad
    // Config.
    Worker(Config cfg, Handler handler);
    virtual ~Worker();
    Worker(const Worker&) = delete;
    Worker& operator=(const Worker&) = delete;

    // run serves jobs until stop(), max_age or max_jobs, then stops
    // gracefully and returns why. Call it once, from the thread that is to
    // own the socket.
    Outcome run();

    // stop asks run() to stop gracefully; with force, without waiting for
    // running jobs. Safe from any thread and from a signal handler.
    void stop(bool force = false) noexcept;

protected:
    // For subclasses: override handle() instead of passing a Handler.
    explicit Worker(Config cfg);
    // handle runs one job; the default calls the Handler given to the
    // constructor. Called from the pool threads.
    virtual std::string handle(const Job& job);

private:
    struct Impl;
    std::unique_ptr<Impl> impl_;
    Handler handler_;
};

// describe_current_exception turns the exception being handled into
// "<type>: <what()>", as worker errors carry it.
std::string describe_current_exception();

}  // namespace hose
