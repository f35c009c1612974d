#include "hose/protocol.hpp"

#include <stdexcept>

namespace hose {
namespace protocol {

namespace {

void put_u8(std::string& out, std::uint8_t v) { out.push_back(static_cast<char>(v)); }

void put_u16(std::string& out, std::uint16_t v) {
    put_u8(out, static_cast<std::uint8_t>(v >> 8));
    put_u8(out, static_cast<std::uint8_t>(v));
}

void put_u32(std::string& out, std::uint32_t v) {
    for (int shift = 24; shift >= 0; shift -= 8) put_u8(out, static_cast<std::uint8_t>(v >> shift));
}

void put_u64(std::string& out, std::uint64_t v) {
    for (int shift = 56; shift >= 0; shift -= 8) put_u8(out, static_cast<std::uint8_t>(v >> shift));
}

void put_str8(std::string& out, std::string_view s) {
    if (s.size() > 255) throw std::invalid_argument("hose: str8 value over 255 bytes");
    put_u8(out, static_cast<std::uint8_t>(s.size()));
    out.append(s);
}

std::uint64_t get_be(std::string_view b, std::size_t off, std::size_t n) {
    std::uint64_t v = 0;
    for (std::size_t i = 0; i < n; i++) v = (v << 8) | static_cast<unsigned char>(b[off + i]);
    return v;
}

[[noreturn]] void truncated(const char* what) { throw Error(Error::kTruncated, std::string("hose: truncated: ") + what); }

// Reader takes big-endian fields off the front of a body.
class Reader {
public:
    explicit Reader(std::string_view b) : b_(b) {}
    std::string_view take(std::size_t n, const char* what) {
        if (b_.size() - off_ < n) truncated(what);
        std::string_view v = b_.substr(off_, n);
        off_ += n;
        return v;
    }
    std::uint64_t uint(std::size_t n, const char* what) { return get_be(take(n, what), 0, n); }
    std::string str8(const char* what) { return std::string(take(uint(1, what), what)); }

private:
    std::string_view b_;
    std::size_t off_ = 0;
};

// split_record takes one length-prefixed record off the front of rest.
std::string_view split_record(std::string_view& rest, std::size_t fixed, const char* what) {
    if (rest.size() < 4) truncated("record length runs past the body");
    std::size_t len = get_be(rest, 0, 4);
    if (len > rest.size() - 4 || len < fixed) truncated(what);
    std::string_view rec = rest.substr(4, len);
    rest.remove_prefix(4 + len);
    return rec;
}

}  // namespace

std::string_view status_name(std::uint8_t status) {
    static const char* const names[] = {"ok",         "malformed",   "unknown service",   "too large",
                                        "busy",       "no worker",   "worker error",      "worker lost",
                                        "deadline exceeded", "unsupported version", "shutting down"};
    return status < sizeof(names) / sizeof(names[0]) ? names[status] : "";
}

const char* Error::kind_name() const noexcept {
    switch (kind_) {
    case kTruncated:
        return "truncated";
    case kBadTag:
        return "bad_tag";
    case kUnsupportedVersion:
        return "unsupported_version";
    case kBadHeaders:
        return "bad_headers";
    }
    return "?";
}

std::string header(std::string_view tag, std::uint8_t command) {
    std::string h(tag);
    h.push_back(static_cast<char>(command));
    return h;
}

std::uint8_t parse_header(std::string_view frame, std::string_view tag) {
    if (frame.size() < 7 || frame.substr(0, 5) != tag.substr(0, 5))
        throw Error(Error::kBadTag, "hose: header frame is not " + std::string(tag) + "+command");
    if (frame[5] != tag[5])
        throw Error(Error::kUnsupportedVersion, "hose: header has version " + std::string(1, frame[5]) +
                                                    ", this peer speaks " + std::string(tag));
    return static_cast<std::uint8_t>(frame[6]);
}

void append_job_record(std::string& out, const JobRecord& r) {
    if (r.service.size() > 255) throw std::invalid_argument("hose: service name over 255 bytes");
    if (r.headers.size() > 65535) throw std::invalid_argument("hose: headers block over 65535 bytes");
    std::size_t len = 16 + r.service.size() + r.headers.size() + r.payload.size();
    if (len > 0xffffffffu) throw std::invalid_argument("hose: record over 4 GiB");
    put_u32(out, static_cast<std::uint32_t>(len));
    put_u64(out, r.id);
    put_u32(out, r.timeout_ms);
    put_u8(out, r.flags);
    put_str8(out, r.service);
    put_u16(out, static_cast<std::uint16_t>(r.headers.size()));
    out.append(r.headers);
    out.append(r.payload);
}

bool JobReader::next(JobRecord& r) {
    if (rest_.empty()) return false;
    std::string_view rec = split_record(rest_, 16, "job record shorter than its fixed fields or past the body");
    r.id = get_be(rec, 0, 8);
    r.timeout_ms = static_cast<std::uint32_t>(get_be(rec, 8, 4));
    r.flags = static_cast<std::uint8_t>(rec[12]);
    std::size_t slen = static_cast<unsigned char>(rec[13]);
    if (14 + slen + 2 > rec.size()) truncated("service name runs past the record");
    std::size_t hlen = get_be(rec, 14 + slen, 2);
    std::size_t hstart = 16 + slen;
    if (hstart + hlen > rec.size()) truncated("headers block runs past the record");
    std::string_view headers = rec.substr(hstart, hlen);
    decode_headers(headers);  // validate
    r.service.assign(rec.substr(14, slen));
    r.headers.assign(headers);
    r.payload.assign(rec.substr(hstart + hlen));
    return true;
}

std::string encode_headers(const HeaderPairs& pairs) {
    std::string out;
    for (const auto& [k, v] : pairs) {
        if (k.size() > 255 || v.size() > 65535) throw std::invalid_argument("hose: header key or value too long");
        put_str8(out, k);
        put_u16(out, static_cast<std::uint16_t>(v.size()));
        out.append(v);
    }
    if (out.size() > 65535) throw std::invalid_argument("hose: headers block over 65535 bytes");
    return out;
}

HeaderPairs decode_headers(std::string_view block) {
    HeaderPairs pairs;
    std::size_t off = 0;
    while (off < block.size()) {
        std::size_t klen = static_cast<unsigned char>(block[off]);
        std::size_t kend = off + 1 + klen;
        if (kend + 2 > block.size()) throw Error(Error::kBadHeaders, "hose: header key runs past the block");
        std::size_t vlen = get_be(block, kend, 2);
        std::size_t vend = kend + 2 + vlen;
        if (vend > block.size()) throw Error(Error::kBadHeaders, "hose: header value runs past the block");
        pairs.emplace_back(std::string(block.substr(off + 1, klen)), std::string(block.substr(kend + 2, vlen)));
        off = vend;
    }
    return pairs;
}

void append_result_record(std::string& out, std::uint64_t id, std::uint8_t status, std::string_view payload) {
    std::size_t len = 9 + payload.size();
    if (len > 0xffffffffu) throw std::invalid_argument("hose: result over 4 GiB");
    put_u32(out, static_cast<std::uint32_t>(len));
    put_u64(out, id);
    put_u8(out, status);
    out.append(payload);
}

bool ResultReader::next(ResultRecord& r) {
    if (rest_.empty()) return false;
    std::string_view rec = split_record(rest_, 9, "result record shorter than 9 bytes or past the body");
    r.id = get_be(rec, 0, 8);
    r.status = static_cast<std::uint8_t>(rec[8]);
    r.payload.assign(rec.substr(9));
    return true;
}

std::string encode_ready(const Ready& r) {
    if (r.capacity == 0) throw std::invalid_argument("hose: capacity must be at least 1");
    if (r.services.size() > 255) throw std::invalid_argument("hose: more than 255 services");
    std::string out;
    put_u16(out, r.capacity);
    put_u32(out, r.pid);
    put_str8(out, r.hostname);
    put_str8(out, r.version);
    put_u8(out, static_cast<std::uint8_t>(r.services.size()));
    for (const auto& s : r.services) {
        if (s.empty()) throw std::invalid_argument("hose: empty service name");
        put_str8(out, s);
    }
    return out;
}

Ready decode_ready(std::string_view body) {
    Reader rd(body);
    Ready r;
    r.capacity = static_cast<std::uint16_t>(rd.uint(2, "READY capacity"));
    r.pid = static_cast<std::uint32_t>(rd.uint(4, "READY pid"));
    r.hostname = rd.str8("READY hostname");
    r.version = rd.str8("READY version");
    std::size_t n = rd.uint(1, "READY service count");
    for (std::size_t i = 0; i < n; i++) r.services.push_back(rd.str8("READY service"));
    return r;
}

std::string encode_welcome(const Welcome& w) {
    std::string out;
    put_u32(out, w.worker_id);
    put_u32(out, w.heartbeat_ms);
    put_u8(out, w.liveness);
    put_u32(out, w.max_payload);
    put_u64(out, w.instance);
    return out;
}

Welcome decode_welcome(std::string_view body) {
    if (body.size() < 21) truncated("WELCOME body shorter than 21 bytes");
    Welcome w;
    w.worker_id = static_cast<std::uint32_t>(get_be(body, 0, 4));
    w.heartbeat_ms = static_cast<std::uint32_t>(get_be(body, 4, 4));
    w.liveness = static_cast<std::uint8_t>(body[8]);
    w.max_payload = static_cast<std::uint32_t>(get_be(body, 9, 4));
    w.instance = get_be(body, 13, 8);
    return w;
}

}  // namespace protocol
}  // namespace hose
