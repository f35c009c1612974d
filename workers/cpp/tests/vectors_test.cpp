// hose-cpp-vectors: checks hose::protocol against testdata/vectors/vectors.json.
//
// For every worker-dialect vector it decodes the frames, compares the result
// with the vector's fields, encodes the fields again and compares the bytes.
// Every worker-dialect invalid vector must fail with its error after the
// stated number of records. It also checks the example's SHA-256 against
// FIPS 180-2 test vectors.
//
//   hose-cpp-vectors [path/to/vectors.json]
//
// Exit status 0 when every check passed.
#include <cstdio>
#include <fstream>
#include <functional>
#include <iostream>
#include <sstream>
#include <string>

#include "../examples/sha256.hpp"
#include "hose/protocol.hpp"
#include "hose/worker.hpp"
#include "json.hpp"

namespace p = hose::protocol;

namespace {

int g_checks = 0, g_failures = 0;
std::string g_vector;

void check(bool ok, const std::string& what) {
    g_checks++;
    if (!ok) {
        g_failures++;
        std::cerr << "FAIL " << g_vector << ": " << what << "\n";
    }
}

template <typename A, typename B>
void check_eq(const A& got, const B& want, const std::string& what) {
    std::ostringstream os;
    os << what << ": got " << got << ", want " << want;
    check(got == want, os.str());
}

std::string unhex(const std::string& h) {
    std::string out;
    for (std::size_t i = 0; i + 1 < h.size(); i += 2) out += static_cast<char>(std::stoi(h.substr(i, 2), nullptr, 16));
    return out;
}

std::string hex(const std::string& b) {
    static const char* d = "0123456789abcdef";
    std::string out;
    for (unsigned char c : b) {
        out += d[c >> 4];
        out += d[c & 15];
    }
    return out;
}

// bytes returns a {"hex", "text"} field, checking text against hex.
std::string bytes(const json::Value& f) {
    std::string b = unhex(f["hex"].str());
    if (f.has("text")) check(f["text"].str() == b, "text and hex of a byte field differ");
    return b;
}

void check_job(const p::JobRecord& r, const json::Value& f) {
    check_eq(r.id, f["id"].u64(), "id");
    check_eq(r.timeout_ms, f["timeout_ms"].u64(), "timeout_ms");
    check_eq(int(r.flags), int(f["flags"].u64()), "flags");
    check_eq((r.flags & p::kFlagIdempotent) != 0, f["idempotent"].boolean(), "idempotent");
    check_eq(hex(r.service), hex(bytes(f["service"])), "service");
    check_eq(hex(r.headers), f["headers"]["hex"].str(), "headers block");
    auto pairs = p::decode_headers(r.headers);
    const auto& want = f["headers"]["pairs"].items;
    check_eq(pairs.size(), want.size(), "header pairs");
    for (std::size_t i = 0; i < pairs.size() && i < want.size(); i++) {
        check_eq(hex(pairs[i].first), hex(bytes(want[i]["key"])), "header key");
        check_eq(hex(pairs[i].second), hex(bytes(want[i]["value"])), "header value");
    }
    check_eq(hex(r.payload), hex(bytes(f["payload"])), "payload");
}

// encode builds a body from a vector's fields.
std::string encode(const std::string& cmd, const json::Value& f) {
    std::string out;
    if (cmd == "JOB") {
        for (const auto& r : f["records"].items) {
            p::JobRecord j;
            j.id = r["id"].u64();
            j.timeout_ms = static_cast<std::uint32_t>(r["timeout_ms"].u64());
            j.flags = static_cast<std::uint8_t>(r["flags"].u64());
            j.service = bytes(r["service"]);
            p::HeaderPairs pairs;
            for (const auto& h : r["headers"]["pairs"].items) pairs.emplace_back(bytes(h["key"]), bytes(h["value"]));
            j.headers = p::encode_headers(pairs);
            j.payload = bytes(r["payload"]);
            p::append_job_record(out, j);
        }
    } else if (cmd == "RESULT") {
        for (const auto& r : f["records"].items)
            p::append_result_record(out, r["id"].u64(), static_cast<std::uint8_t>(r["status"].u64()),
                                    bytes(r["payload"]));
    } else if (cmd == "READY") {
        p::Ready rd;
        rd.capacity = static_cast<std::uint16_t>(f["capacity"].u64());
        rd.pid = static_cast<std::uint32_t>(f["pid"].u64());
        rd.hostname = f["hostname"].str();
        rd.version = f["version"].str();
        for (const auto& s : f["services"].items) rd.services.push_back(s.str());
        out = p::encode_ready(rd);
    } else if (cmd == "WELCOME") {
        p::Welcome w;
        w.worker_id = static_cast<std::uint32_t>(f["worker_id"].u64());
        w.heartbeat_ms = static_cast<std::uint32_t>(f["heartbeat_ms"].u64());
        w.liveness = static_cast<std::uint8_t>(f["liveness"].u64());
        w.max_payload = static_cast<std::uint32_t>(f["max_payload"].u64());
        w.instance = f["instance"].u64();
        out = p::encode_welcome(w);
    } else if (cmd == "DISCONNECT") {
        out = f["reason"].str();
    }
    return out;
}

// decode_and_compare decodes body and compares it with the fields.
void decode_and_compare(const std::string& cmd, const std::string& body, const json::Value& f) {
    if (cmd == "JOB") {
        p::JobReader rd(body);
        p::JobRecord r;
        std::size_t n = 0;
        const auto& want = f["records"].items;
        while (rd.next(r)) {
            if (n < want.size()) check_job(r, want[n]);
            n++;
        }
        check_eq(n, want.size(), "records");
    } else if (cmd == "RESULT") {
        p::ResultReader rd(body);
        p::ResultRecord r;
        std::size_t n = 0;
        const auto& want = f["records"].items;
        while (rd.next(r)) {
            if (n < want.size()) {
                check_eq(r.id, want[n]["id"].u64(), "id");
                check_eq(int(r.status), int(want[n]["status"].u64()), "status");
                check_eq(std::string(p::status_name(r.status)), want[n]["status_name"].str(), "status_name");
                check_eq(hex(r.payload), hex(bytes(want[n]["payload"])), "payload");
            }
            n++;
        }
        check_eq(n, want.size(), "records");
    } else if (cmd == "READY") {
        p::Ready rd = p::decode_ready(body);
        check_eq(rd.capacity, f["capacity"].u64(), "capacity");
        check_eq(rd.pid, f["pid"].u64(), "pid");
        check_eq(rd.hostname, f["hostname"].str(), "hostname");
        check_eq(rd.version, f["version"].str(), "version");
        check_eq(rd.services.size(), f["services"].items.size(), "services");
        for (std::size_t i = 0; i < rd.services.size() && i < f["services"].items.size(); i++)
            check_eq(rd.services[i], f["services"].items[i].str(), "service");
    } else if (cmd == "WELCOME") {
        p::Welcome w = p::decode_welcome(body);
        check_eq(w.worker_id, f["worker_id"].u64(), "worker_id");
        check_eq(w.heartbeat_ms, f["heartbeat_ms"].u64(), "heartbeat_ms");
        check_eq(int(w.liveness), int(f["liveness"].u64()), "liveness");
        check_eq(w.max_payload, f["max_payload"].u64(), "max_payload");
        check_eq(w.instance, f["instance"].u64(), "instance");
    } else if (cmd == "DISCONNECT") {
        check_eq(body, f["reason"].str(), "reason");
    } else {
        check(f.fields.empty(), "fields of an empty-bodied command");
    }
}

// decode_invalid decodes body, counting records, and returns the error.
std::string decode_invalid(const std::string& cmd, const std::string& body, std::size_t& records) {
    records = 0;
    try {
        if (cmd == "JOB") {
            p::JobReader rd(body);
            p::JobRecord r;
            while (rd.next(r)) records++;
        } else if (cmd == "RESULT") {
            p::ResultReader rd(body);
            p::ResultRecord r;
            while (rd.next(r)) records++;
        } else if (cmd == "READY") {
            p::decode_ready(body);
        } else if (cmd == "WELCOME") {
            p::decode_welcome(body);
        }
    } catch (const p::Error& e) {
        return e.kind_name();
    }
    return "none";
}

std::string command_name(const json::Value& commands, std::uint8_t cmd) {
    for (const auto& [name, v] : commands.fields)
        if (v.u64() == cmd) return name;
    return "?";
}

void sha256_self_test() {
    g_vector = "sha256";
    check_eq(hex(example::sha256("abc")), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad", "abc");
    check_eq(hex(example::sha256("")), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855", "empty");
    check_eq(hex(example::sha256("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq")),
             "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1", "448 bits");
    std::string million(1000000, 'a');
    check_eq(hex(example::sha256(million)), "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0",
             "a million a");
    check_eq(hex(example::sha256_rounds("abc", 2)), hex(example::sha256(example::sha256("abc"))), "2 rounds");
}

// Upper is a worker written the subclass way.
class Upper : public hose::Worker {
public:
    explicit Upper(hose::Config cfg) : hose::Worker(std::move(cfg)) {}

protected:
    std::string handle(const hose::Job& job) override { return job.payload; }
};

template <typename F>
bool throws_invalid(F f) {
    try {
        f();
    } catch (const std::invalid_argument&) {
        return true;
    }
    return false;
}

// api_checks constructs workers (no socket is opened before run()) and
// checks the error text of handler exceptions.
void api_checks() {
    g_vector = "api";
    hose::Config cfg;
    Upper u(cfg);
    hose::Worker f(cfg, [](const hose::Job& j) { return j.payload; });
    check(throws_invalid([&] { hose::Worker w(cfg, hose::Handler()); }), "empty handler accepted");
    hose::Config bad = cfg;
    bad.services = {""};
    check(throws_invalid([&] { hose::Worker w(bad, [](const hose::Job&) { return std::string(); }); }),
          "empty service name accepted");
    bad = cfg;
    bad.concurrency = 40000;  // + prefetch 40000 > 65535
    check(throws_invalid([&] { Upper w(bad); }), "capacity over 65535 accepted");
    try {
        throw std::out_of_range("no such key");
    } catch (...) {
        check_eq(hose::describe_current_exception(), std::string("std::out_of_range: no such key"), "exception text");
    }
    hose::Job j;
    j.headers = {{"a", "1"}, {"a", "2"}};
    check_eq(std::string(j.header("a")), std::string("1"), "first header value");
    check_eq(std::string(j.header("b")), std::string(""), "missing header");
    check_eq(j.param("x", "def"), std::string("def"), "missing param");
}

}  // namespace

int main(int argc, char** argv) {
    std::string path = argc > 1 ? argv[1] : "../../testdata/vectors/vectors.json";
    std::ifstream in(path, std::ios::binary);
    if (!in) {
        std::cerr << "hose-cpp-vectors: cannot open " << path << "\n";
        return 2;
    }
    std::stringstream ss;
    ss << in.rdbuf();
    json::Value doc;
    try {
        doc = json::parse(ss.str());
    } catch (const std::exception& e) {
        std::cerr << "hose-cpp-vectors: " << path << ": " << e.what() << "\n";
        return 2;
    }
    const json::Value& commands = doc["commands"]["worker"];
    g_vector = "tables";
    check_eq(doc["tags"]["worker"].str(), std::string(p::kWorkerTag), "worker tag");
    check_eq(commands["READY"].u64(), unsigned(p::kReady), "READY");
    check_eq(commands["WELCOME"].u64(), unsigned(p::kWelcome), "WELCOME");
    check_eq(commands["JOB"].u64(), unsigned(p::kJob), "JOB");
    check_eq(commands["RESULT"].u64(), unsigned(p::kResult), "RESULT");
    check_eq(commands["HEARTBEAT"].u64(), unsigned(p::kHeartbeat), "HEARTBEAT");
    check_eq(commands["DRAIN"].u64(), unsigned(p::kDrain), "DRAIN");
    check_eq(commands["DISCONNECT"].u64(), unsigned(p::kDisconnect), "DISCONNECT");
    for (const auto& [code, name] : doc["statuses"].fields)
        check_eq(std::string(p::status_name(static_cast<std::uint8_t>(std::stoi(code)))), name.str(), "status " + code);

    int valid = 0, invalid = 0;
    std::map<std::string, bool> seen;
    for (const auto& v : doc["vectors"].items) {
        if (v["dialect"].str() != "worker") continue;
        g_vector = v["name"].str();
        valid++;
        try {
            const auto& frames = v["frames"].items;
            std::string hdr = unhex(frames.at(0).str());
            std::string body = frames.size() > 1 ? unhex(frames[1].str()) : "";
            std::uint8_t cmd = p::parse_header(hdr);
            std::string name = command_name(commands, cmd);
            check_eq(name, v["command"].str(), "command");
            check_eq(hex(p::header(p::kWorkerTag, cmd)), frames[0].str(), "header");
            decode_and_compare(name, body, v["fields"]);
            check_eq(hex(encode(name, v["fields"])), hex(body), "encoded body");
            seen[name] = true;
        } catch (const std::exception& e) {
            check(false, std::string("exception: ") + e.what());
        }
    }
    g_vector = "coverage";
    for (const auto& [name, code] : commands.fields) check(seen[name], "no vector for " + name);

    for (const auto& v : doc["invalid"].items) {
        if (v["dialect"].str() != "worker") continue;
        g_vector = v["name"].str();
        invalid++;
        const auto& frames = v["frames"].items;
        std::string hdr = unhex(frames.at(0).str());
        std::string body = frames.size() > 1 ? unhex(frames[1].str()) : "";
        std::string err;
        std::size_t records = 0;
        try {
            std::uint8_t cmd = p::parse_header(hdr);
            err = decode_invalid(command_name(commands, cmd), body, records);
        } catch (const p::Error& e) {
            err = e.kind_name();
        }
        check_eq(err, v["error"].str(), "error");
        if (v.has("records_before_error"))
            check_eq(records, v["records_before_error"].u64(), "records before the error");
    }
    sha256_self_test();
    api_checks();
    std::printf("hose-cpp-vectors: %d worker vectors, %d invalid vectors, %d checks, %d failures\n", valid, invalid,
                g_checks, g_failures);
    return g_failures == 0 ? 0 : 1;
}
