// The socket owner and its job pool. See include/hose/worker.hpp and
// docs/PROTOCOL.md sections 9 and 11.
#include "hose/worker.hpp"

#include <cxxabi.h>
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <deque>
#include <mutex>
#include <optional>
#include <random>
#include <sstream>
#include <thread>
#include <typeinfo>
#include <zmq.hpp>

#include "hose/protocol.hpp"

namespace hose {

namespace {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

constexpr std::size_t kBatchMax = 256 << 10;  // start a new RESULT past this
constexpr milliseconds kReadyRetry{20};       // READY again this soon when no broker took it
constexpr int kReadMax = 256;                 // messages read per wake-up

// Wake is a pipe the owner polls. signal() is async-signal-safe. It is
// shared with the pool threads, so it outlives a run() that abandoned jobs.
struct Wake {
    int r = -1, w = -1;
    std::atomic<bool> set{false};

    Wake() {
        int fds[2];
        if (pipe(fds) != 0) throw std::runtime_error("hose: pipe failed");
        r = fds[0];
        w = fds[1];
        for (int fd : fds) {
            fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
            fcntl(fd, F_SETFD, FD_CLOEXEC);
        }
    }
    ~Wake() {
        close(r);
        close(w);
    }
    void signal() noexcept {
        if (!set.exchange(true)) {
            char c = 0;
            ssize_t n = write(w, &c, 1);
            (void)n;  // a full pipe already wakes the owner
        }
    }
    void drain() noexcept {
        // Read first, then clear the flag. A signal() that still saw the
        // flag set pushed its result before this clear, so the owner's next
        // look at the results finds it; one after the clear writes a byte
        // that wakes the next poll. (Clearing first can swallow the byte of
        // a signal() that set the flag again: the flag then stays set with
        // an empty pipe and no signal wakes the owner any more.)
        char buf[256];
        while (read(r, buf, sizeof buf) > 0) {
        }
        set.store(false);
    }
};

// Task is one job on its way through the pool and back.
struct Task {
    std::uint64_t gen = 0;  // registration the job came from
    Job job;
    std::uint8_t status = protocol::kStatusOK;
    std::string result;
};

// Pool is the queue between the owner and the job threads.
struct Pool {
    std::mutex mu;
    std::condition_variable cv;
    std::deque<std::unique_ptr<Task>> queue;
    bool closing = false;

    std::mutex done_mu;
    std::vector<std::unique_ptr<Task>> done;

    std::shared_ptr<Wake> wake;
};

std::string demangle(const char* name) {
    int status = 0;
    char* s = abi::__cxa_demangle(name, nullptr, nullptr, &status);
    std::string out = (status == 0 && s) ? s : name;
    std::free(s);
    return out;
}

}  // namespace

std::string describe_current_exception() {
    try {
        throw;
    } catch (const std::exception& e) {
        return demangle(typeid(e).name()) + ": " + e.what();
    } catch (const std::string& s) {
        return s;
    } catch (const char* s) {
        return s;
    } catch (...) {
        return "unknown exception";
    }
}

std::string_view Job::header(std::string_view key) const {
    for (const auto& [k, v] : headers)
        if (k == key) return v;
    return {};
}

std::string Job::param(const std::string& key, const std::string& def) const {
    if (params) {
        auto it = params->find(key);
        if (it != params->end()) return it->second;
    }
    return def;
}

milliseconds Job::time_left() const {
    auto left = std::chrono::duration_cast<milliseconds>(deadline - Clock::now());
    return std::max(left, milliseconds(0));
}

struct Worker::Impl {
    Worker* self;
    Config cfg;
    std::string ready;  // READY body
    std::map<std::string, std::string> params;
    std::shared_ptr<Wake> wake = std::make_shared<Wake>();
    std::atomic<bool> stop_req{false};
    std::atomic<bool> force{false};
    bool ran = false;

    // Owner state, valid during run().
    std::shared_ptr<Pool> pool;
    std::vector<std::thread> threads;
    std::optional<zmq::context_t> ctx;
    std::unique_ptr<zmq::socket_t> sock;
    std::uint64_t gen = 0;
    bool registered = false;
    bool ready_sent = false;  // a READY left on this connection: a WELCOME may follow
    bool drained = false;  // the broker acknowledged our DRAIN
    milliseconds hb{500};
    int liveness = 4;
    std::size_t max_payload = 8 << 20;
    Clock::time_point last_heard, last_sent, next_ready;
    std::optional<Clock::time_point> retry_at;  // reconnect or READY again
    milliseconds backoff{100};
    long running = 0;
    std::uint64_t jobs_done = 0;
    std::optional<Clock::time_point> retire_at;
    bool stopping = false;
    Outcome stop_outcome = Outcome::kStopped;
    Clock::time_point stop_by;

    void log(LogLevel level, const std::string& msg) const {
        if (cfg.logger) cfg.logger(level, msg);
    }

    template <typename... Args>
    void logf(LogLevel level, Args&&... args) const {
        if (!cfg.logger) return;
        std::ostringstream os;
        (os << ... << args);
        cfg.logger(level, os.str());
    }

    void serve() {
        auto p = pool;
        for (;;) {
            std::unique_ptr<Task> t;
            {
                std::unique_lock<std::mutex> lk(p->mu);
                p->cv.wait(lk, [&] { return p->closing || !p->queue.empty(); });
                if (p->queue.empty()) return;
                t = std::move(p->queue.front());
                p->queue.pop_front();
            }
            try {
                t->result = self->handle(t->job);
                t->status = protocol::kStatusOK;
            } catch (...) {
                t->result = describe_current_exception();
                t->status = protocol::kStatusWorkerError;
            }
            {
                std::lock_guard<std::mutex> lk(p->done_mu);
                p->done.push_back(std::move(t));
            }
            p->wake->signal();
        }
    }

    bool send(std::uint8_t cmd, std::string_view body, Clock::time_point now) {
        if (!sock) return false;
        static const std::string headers[] = {
            "",
            protocol::header(protocol::kWorkerTag, protocol::kReady),
            protocol::header(protocol::kWorkerTag, protocol::kWelcome),
            protocol::header(protocol::kWorkerTag, protocol::kJob),
            protocol::header(protocol::kWorkerTag, protocol::kResult),
            protocol::header(protocol::kWorkerTag, protocol::kHeartbeat),
            protocol::header(protocol::kWorkerTag, protocol::kDrain),
            protocol::header(protocol::kWorkerTag, protocol::kDisconnect),
        };
        try {
            // Never block: with IMMEDIATE a blocking send waits for the
            // broker to come back.
            if (!sock->send(zmq::buffer(headers[cmd]), zmq::send_flags::sndmore | zmq::send_flags::dontwait))
                return false;
            sock->send(zmq::buffer(body.data(), body.size()), zmq::send_flags::dontwait);
        } catch (const zmq::error_t& e) {
            logf(LogLevel::kWarn, "send: ", e.what());
            return false;
        }
        last_sent = now;
        return true;
    }

    void send_ready(Clock::time_point now) {
        bool ok = send(protocol::kReady, ready, now);
        ready_sent = ready_sent || ok;
        next_ready = now + (ok ? hb : kReadyRetry);
    }

    // set_curve makes the socket a CURVE client (keys in Z85).
    void set_curve() {
        char pub[41] = {0}, sec[41] = {0};
        if (cfg.curve_secret_key.empty()) {
            if (zmq_curve_keypair(pub, sec) != 0) throw std::runtime_error("zmq_curve_keypair failed (no CURVE in libzmq?)");
        } else {
            std::snprintf(sec, sizeof sec, "%s", cfg.curve_secret_key.c_str());
            if (zmq_curve_public(pub, sec) != 0) throw std::invalid_argument("curve_secret_key is not a Z85 secret key");
        }
        sock->set(zmq::sockopt::curve_serverkey, cfg.curve_server_key);
        sock->set(zmq::sockopt::curve_publickey, std::string(pub));
        sock->set(zmq::sockopt::curve_secretkey, std::string(sec));
    }

    void connect(Clock::time_point now) {
        if (sock) sock->close();
        sock = std::make_unique<zmq::socket_t>(*ctx, zmq::socket_type::dealer);
        sock->set(zmq::sockopt::immediate, 1);
        sock->set(zmq::sockopt::linger, 100);
        sock->set(zmq::sockopt::sndhwm, 100000);
        sock->set(zmq::sockopt::rcvhwm, 100000);
        sock->set(zmq::sockopt::reconnect_ivl, 100);
        sock->set(zmq::sockopt::reconnect_ivl_max, 1000);
        if (!cfg.curve_server_key.empty()) set_curve();
        sock->connect(cfg.backend);
        unregister();
        retry_at.reset();
        last_heard = now;
        send_ready(now);
    }

    void unregister() {
        registered = false;
        ready_sent = false;
        drained = false;
        gen++;  // results of the jobs held now are never sent
    }

    // Reads what the broker sent; returns an outcome when run() must end.
    std::optional<Outcome> read_messages(Clock::time_point now) {
        zmq::message_t frames[2];
        for (int i = 0; i < kReadMax; i++) {
            int n = 0;
            try {
                zmq::message_t part;
                if (!sock->recv(part, zmq::recv_flags::dontwait)) return std::nullopt;
                bool more = part.more();
                frames[n++] = std::move(part);
                while (more) {  // the rest of a multipart message is already here
                    zmq::message_t extra;
                    (void)sock->recv(extra);
                    more = extra.more();
                    if (n < 2) frames[n++] = std::move(extra);
                }
            } catch (const zmq::error_t& e) {
                if (e.num() == EINTR) continue;
                throw;
            }
            std::uint8_t cmd;
            try {
                cmd = protocol::parse_header(frames[0].to_string_view());
            } catch (const protocol::Error& e) {
                logf(LogLevel::kWarn, "dropping a message from the broker: ", e.what());
                continue;
            }
            last_heard = now;
            std::string_view body = n > 1 ? frames[1].to_string_view() : std::string_view();
            switch (cmd) {
            case protocol::kJob:
                jobs(body, now);
                break;
            case protocol::kHeartbeat:
                break;
            case protocol::kDrain:
                drained = true;  // acknowledged: no JOB follows
                break;
            case protocol::kWelcome:
                welcome(body, now);
                break;
            case protocol::kDisconnect:
                return disconnected(body, now);
            default:
                logf(LogLevel::kWarn, "dropping unknown command ", int(cmd), " from the broker");
            }
        }
        return std::nullopt;
    }

    void welcome(std::string_view body, Clock::time_point now) {
        protocol::Welcome w;
        try {
            w = protocol::decode_welcome(body);
        } catch (const protocol::Error& e) {
            logf(LogLevel::kWarn, "malformed WELCOME: ", e.what());
            return;
        }
        if (!registered)
            logf(LogLevel::kInfo, "registered: worker id ", w.worker_id, ", heartbeat ", w.heartbeat_ms,
                 " ms, liveness ", int(w.liveness));
        registered = true;
        backoff = cfg.reconnect_min;
        if (w.heartbeat_ms) hb = milliseconds(w.heartbeat_ms);
        if (w.liveness) liveness = w.liveness;
        if (w.max_payload) max_payload = w.max_payload;
        if (stopping) send(protocol::kDrain, {}, now);
    }

    std::optional<Outcome> disconnected(std::string_view body, Clock::time_point now) {
        logf(LogLevel::kInfo, "broker said DISCONNECT: ", body.empty() ? std::string_view("(no reason)") : body);
        if (stopping) return stop_outcome;
        if (cfg.exit_on_broker_loss) throw BrokerLost("hose: broker said DISCONNECT: " + std::string(body));
        // The broker forgot us (it restarted, or dropped us): register
        // again after a backoff, on the same socket.
        unregister();
        retry_at = now + backoff;
        backoff = std::min(2 * backoff, cfg.reconnect_max);
        return std::nullopt;
    }

    void jobs(std::string_view body, Clock::time_point now) {
        protocol::JobReader rd(body);
        protocol::JobRecord r;
        std::vector<std::unique_ptr<Task>> batch;
        try {
            while (rd.next(r)) {
                auto t = std::make_unique<Task>();
                t->gen = gen;
                Job& j = t->job;
                j.id = r.id;
                j.service = r.service.empty() ? std::string(protocol::kDefaultService) : r.service;
                j.payload = std::move(r.payload);
                if (!r.headers.empty()) j.headers = protocol::decode_headers(r.headers);
                j.deadline = now + milliseconds(r.timeout_ms);
                j.idempotent = (r.flags & protocol::kFlagIdempotent) != 0;
                j.params = &params;
                batch.push_back(std::move(t));
            }
        } catch (const protocol::Error& e) {
            logf(LogLevel::kWarn, "dropping the rest of a malformed JOB batch: ", e.what());
        }
        if (batch.empty()) return;
        running += static_cast<long>(batch.size());
        {
            std::lock_guard<std::mutex> lk(pool->mu);
            for (auto& t : batch) pool->queue.push_back(std::move(t));
        }
        if (batch.size() == 1)
            pool->cv.notify_one();
        else
            pool->cv.notify_all();
    }

    void send_results(Clock::time_point now) {
        std::vector<std::unique_ptr<Task>> batch;
        {
            std::lock_guard<std::mutex> lk(pool->done_mu);
            batch.swap(pool->done);
        }
        if (batch.empty()) return;
        std::string out;
        for (auto& t : batch) {
            running--;
            jobs_done++;
            if (t->gen != gen || !registered) continue;  // the broker forgot this job
            if (t->result.size() > max_payload) {
                std::ostringstream os;
                os << "result of " << t->result.size() << " bytes exceeds the broker's limit of " << max_payload;
                t->result = os.str();
                t->status = protocol::kStatusWorkerError;
            }
            if (!out.empty() && out.size() + 13 + t->result.size() > kBatchMax) {
                send(protocol::kResult, out, now);
                out.clear();
            }
            protocol::append_result_record(out, t->job.id, t->status, t->result);
        }
        if (!out.empty()) send(protocol::kResult, out, now);
        if (cfg.max_jobs && jobs_done >= cfg.max_jobs && !stopping)
            begin_stop(Outcome::kRetired, now, "max jobs reached");
    }

    void begin_stop(Outcome why, Clock::time_point now, const char* reason) {
        stopping = true;
        stop_outcome = why;
        stop_by = now + cfg.drain_timeout;
        logf(LogLevel::kInfo, "worker draining (", reason, "), ", running, " jobs running");
        if (registered) send(protocol::kDrain, {}, now);
    }

    // Heartbeats, notices a silent broker, reconnects or registers again.
    std::optional<Outcome> tick(Clock::time_point now) {
        if (retry_at) {
            if (now >= *retry_at) {
                retry_at.reset();
                if (!sock) {
                    connect(now);  // the broker went silent: a new connection
                } else {
                    last_heard = now;  // it said DISCONNECT: READY again
                    send_ready(now);
                }
            }
            return std::nullopt;
        }
        if (now - last_heard > hb * liveness) {
            auto silent = std::chrono::duration_cast<milliseconds>(now - last_heard).count();
            logf(LogLevel::kWarn, "broker silent for ", silent, " ms");
            if (stopping) return stop_outcome;
            if (cfg.exit_on_broker_loss)
                throw BrokerLost("hose: broker silent for " + std::to_string(silent) + " ms");
            unregister();
            sock->close();
            sock.reset();
            retry_at = now + backoff;
            backoff = std::min(2 * backoff, cfg.reconnect_max);
            return std::nullopt;
        }
        if (registered) {
            if (now - last_sent >= hb) send(protocol::kHeartbeat, {}, now);
        } else if (now >= next_ready) {
            send_ready(now);
        }
        return std::nullopt;
    }

    Outcome loop() {
        auto now = Clock::now();
        connect(now);
        logf(LogLevel::kInfo, "worker started: backend ", cfg.backend, ", concurrency ", cfg.concurrency, ", prefetch ",
             cfg.prefetch);
        auto next_tick = now;
        for (;;) {
            now = Clock::now();
            auto timeout = next_tick - now;
            if (retry_at) timeout = std::min(timeout, *retry_at - now);
            if (stop_req.load() && !stopping) timeout = Clock::duration::zero();
            long ms = std::max<long>(0, std::chrono::duration_cast<milliseconds>(timeout).count() + 1);
            zmq_pollitem_t items[2] = {{nullptr, wake->r, ZMQ_POLLIN, 0}, {nullptr, 0, ZMQ_POLLIN, 0}};
            int n = 1;
            if (sock) {
                items[1].socket = sock->handle();
                n = 2;
            }
            try {
                zmq::poll(items, n, milliseconds(ms));
            } catch (const zmq::error_t& e) {
                if (e.num() != EINTR) throw;
                continue;  // a signal: stop() has set its flag
            }
            now = Clock::now();
            if (items[0].revents & ZMQ_POLLIN) wake->drain();
            if (n == 2 && (items[1].revents & ZMQ_POLLIN)) {
                if (auto o = read_messages(now)) return *o;
            }
            send_results(now);
            if (stop_req.load() && !stopping) begin_stop(Outcome::kStopped, now, "stop requested");
            if (retire_at && now >= *retire_at && !stopping) begin_stop(Outcome::kRetired, now, "max age reached");
            // Leave once every job is done and the broker acknowledged our
            // DRAIN (jobs it sent before the ack arrive before it). A READY
            // still unanswered may have registered us: wait for its WELCOME
            // (then DRAIN) rather than vanish with jobs on their way.
            bool left_broker = registered ? drained : !ready_sent;
            if (stopping && ((running == 0 && left_broker) || now >= stop_by || force.load())) {
                if (running) logf(LogLevel::kWarn, "drain timed out, abandoning ", running, " jobs");
                if (registered) send(protocol::kDisconnect, {}, now);
                logf(LogLevel::kInfo, "worker stopped after ", jobs_done, " jobs");
                return stop_outcome;
            }
            if (now >= next_tick) {
                if (auto o = tick(now)) return *o;
                milliseconds step = hb / 4;
                if (!registered && sock && !retry_at) step = std::min(step, kReadyRetry);
                next_tick = now + step;
            }
        }
    }
};

Worker::Worker(Config cfg, Handler handler) : Worker(std::move(cfg)) {
    if (!handler) throw std::invalid_argument("hose: empty handler");
    handler_ = std::move(handler);
}

Worker::Worker(Config cfg) : impl_(std::make_unique<Impl>()) {
    if (cfg.services.empty()) cfg.services = {std::string(protocol::kDefaultService)};
    if (cfg.concurrency <= 0) cfg.concurrency = std::max(1u, std::thread::hardware_concurrency());
    if (cfg.prefetch == 0) cfg.prefetch = cfg.concurrency;
    if (cfg.prefetch < 0) cfg.prefetch = 0;
    if (cfg.concurrency + cfg.prefetch > 65535) throw std::invalid_argument("hose: concurrency + prefetch over 65535");
    if (cfg.services.size() > 255) throw std::invalid_argument("hose: more than 255 services");
    for (const auto& s : cfg.services)
        if (s.empty() || s.size() > 255) throw std::invalid_argument("hose: service names must be 1..255 bytes");
    if (cfg.max_age.count() < 0 || cfg.max_age_delta.count() < 0)
        throw std::invalid_argument("hose: negative max_age or max_age_delta");
    if (cfg.heartbeat.count() <= 0) cfg.heartbeat = milliseconds(500);
    if (cfg.liveness <= 0) cfg.liveness = 4;
    if (cfg.reconnect_min.count() <= 0) cfg.reconnect_min = milliseconds(100);
    if (cfg.reconnect_max < cfg.reconnect_min) cfg.reconnect_max = std::max(cfg.reconnect_min, milliseconds(5000));
    if (cfg.version.empty()) cfg.version = std::string("hose-cpp/") + kVersion;
    char host[256] = {0};
    gethostname(host, sizeof host - 1);
    protocol::Ready rd;
    rd.capacity = static_cast<std::uint16_t>(cfg.concurrency + cfg.prefetch);
    rd.pid = static_cast<std::uint32_t>(getpid());
    rd.hostname = host;
    rd.version = cfg.version.substr(0, 255);
    rd.services = cfg.services;
    impl_->self = this;
    impl_->ready = protocol::encode_ready(rd);
    impl_->params = cfg.params;
    impl_->hb = cfg.heartbeat;
    impl_->liveness = cfg.liveness;
    impl_->backoff = cfg.reconnect_min;
    impl_->cfg = std::move(cfg);
}

Worker::~Worker() = default;

std::string Worker::handle(const Job& job) {
    if (!handler_) throw std::logic_error("hose: Worker has no handler and handle() is not overridden");
    return handler_(job);
}

void Worker::stop(bool force) noexcept {
    if (force) impl_->force.store(true);
    impl_->stop_req.store(true);
    impl_->wake->signal();
}

Outcome Worker::run() {
    Impl& s = *impl_;
    if (s.ran) throw std::logic_error("hose: Worker::run called twice");
    s.ran = true;
    if (s.cfg.max_age.count() > 0) {
        std::mt19937_64 rng{std::random_device{}()};
        auto delta = s.cfg.max_age_delta.count() > 0
                         ? std::uniform_int_distribution<long long>(0, s.cfg.max_age_delta.count())(rng)
                         : 0;
        s.retire_at = Clock::now() + s.cfg.max_age + milliseconds(delta);
    }
    s.pool = std::make_shared<Pool>();
    s.pool->wake = s.wake;
    for (int i = 0; i < s.cfg.concurrency; i++) s.threads.emplace_back([&s] { s.serve(); });
    s.ctx.emplace(1);

    struct Cleanup {
        Impl& s;
        ~Cleanup() {
            if (s.sock) {
                s.sock->set(zmq::sockopt::linger, 100);  // let a last DISCONNECT leave
                s.sock->close();
                s.sock.reset();
            }
            s.ctx->close();
            {
                std::lock_guard<std::mutex> lk(s.pool->mu);
                s.pool->closing = true;
                s.pool->queue.clear();
            }
            s.pool->cv.notify_all();
            bool abandon = s.running > 0;
            for (auto& t : s.threads) {
                if (abandon)
                    t.detach();  // jobs still run: the process should exit soon
                else
                    t.join();
            }
            s.threads.clear();
        }
    } cleanup{s};
    return s.loop();
}

}  // namespace hose
