// The worker dialect (HOSEW1) of the hose wire protocol, version 1:
// encoders for what a worker sends and decoders for what it receives (and
// the reverse, for tests and tools). Written from docs/PROTOCOL.md and
// checked against testdata/vectors/vectors.json by tests/vectors_test.cpp.
//
// Every integer is unsigned big-endian. Byte fields are std::string (any
// bytes). Decoders throw hose::protocol::Error.
#pragma once

#include <cstdint>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace hose {
namespace protocol {

inline constexpr std::string_view kWorkerTag = "HOSEW1";
inline constexpr std::string_view kClientTag = "HOSEC1";
inline constexpr std::string_view kDefaultService = "default";
inline constexpr std::uint8_t kFlagIdempotent = 0x01;

// Worker dialect commands (PROTOCOL.md section 5).
enum Command : std::uint8_t {
    kReady = 0x01,
    kWelcome = 0x02,
    kJob = 0x03,
    kResult = 0x04,
    kHeartbeat = 0x05,
    kDrain = 0x06,
    kDisconnect = 0x07,
};

// Status codes a worker sends in results (PROTOCOL.md section 7).
enum Status : std::uint8_t {
    kStatusOK = 0,
    kStatusWorkerError = 6,
};

// The status name of section 7, or "" for an unassigned code.
std::string_view status_name(std::uint8_t status);

// A message that does not decode; kind() names the error as the vectors do.
class Error : public std::runtime_error {
public:
    enum Kind { kTruncated, kBadTag, kUnsupportedVersion, kBadHeaders };
    Error(Kind kind, const std::string& what) : std::runtime_error(what), kind_(kind) {}
    Kind kind() const noexcept { return kind_; }
    // "truncated", "bad_tag", "unsupported_version" or "bad_headers".
    const char* kind_name() const noexcept;

private:
    Kind kind_;
};

// header returns the 7-byte header frame: the tag and the command byte.
std::string header(std::string_view tag, std::uint8_t command);

// parse_header returns the command byte of a header frame of the dialect
// whose tag is given; throws kBadTag or kUnsupportedVersion.
std::uint8_t parse_header(std::string_view frame, std::string_view tag = kWorkerTag);

using HeaderPairs = std::vector<std::pair<std::string, std::string>>;

// A job record (broker -> worker), which has the request record's layout.
struct JobRecord {
    std::uint64_t id = 0;
    std::uint32_t timeout_ms = 0;
    std::uint8_t flags = 0;
    std::string service;
    std::string headers;  // the raw headers block
    std::string payload;
};

void append_job_record(std::string& out, const JobRecord& r);

// JobReader decodes the records of a JOB (or REQUEST) body one by one:
// next() returns false at the end of the body and throws at a bad record,
// so the records before it are still used.
class JobReader {
public:
    explicit JobReader(std::string_view body) : rest_(body) {}
    bool next(JobRecord& r);

private:
    std::string_view rest_;
};

std::string encode_headers(const HeaderPairs& pairs);
HeaderPairs decode_headers(std::string_view block);  // throws kBadHeaders

struct ResultRecord {
    std::uint64_t id = 0;
    std::uint8_t status = 0;
    std::string payload;
};

void append_result_record(std::string& out, std::uint64_t id, std::uint8_t status, std::string_view payload);

class ResultReader {
public:
    explicit ResultReader(std::string_view body) : rest_(body) {}
    bool next(ResultRecord& r);

private:
    std::string_view rest_;
};

struct Ready {
    std::uint16_t capacity = 1;
    std::uint32_t pid = 0;
    std::string hostname;
    std::string version;
    std::vector<std::string> services;  // empty means "default"
};

std::string encode_ready(const Ready& r);  // throws std::invalid_argument
Ready decode_ready(std::string_view body);

struct Welcome {
    std::uint32_t worker_id = 0;
    std::uint32_t heartbeat_ms = 0;
    std::uint8_t liveness = 0;
    std::uint32_t max_payload = 0;
    std::uint64_t instance = 0;
};

std::string encode_welcome(const Welcome& w);
Welcome decode_welcome(std::string_view body);  // bytes after the 21 known ones are ignored

}  // namespace protocol
}  // namespace hose
