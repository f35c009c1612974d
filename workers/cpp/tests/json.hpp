// A minimal JSON reader for the vectors test: objects, arrays, strings,
// numbers (kept as their text, so u64 values above 2^53 stay exact), true,
// false and null. Throws std::runtime_error on bad input.
#pragma once

#include <cctype>
#include <cstdint>
#include <map>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

namespace json {

struct Value {
    enum Kind { kNull, kBool, kNumber, kString, kArray, kObject } kind = kNull;
    bool b = false;
    std::string text;  // string contents, or a number's text
    std::vector<Value> items;
    std::map<std::string, Value> fields;

    bool has(const std::string& key) const { return kind == kObject && fields.count(key) > 0; }
    const Value& operator[](const std::string& key) const {
        auto it = fields.find(key);
        if (kind != kObject || it == fields.end()) throw std::runtime_error("json: no key " + key);
        return it->second;
    }
    const std::string& str() const {
        if (kind != kString) throw std::runtime_error("json: not a string");
        return text;
    }
    std::uint64_t u64() const {
        if (kind != kNumber) throw std::runtime_error("json: not a number");
        std::size_t pos = 0;
        std::uint64_t v = std::stoull(text, &pos);
        if (pos != text.size()) throw std::runtime_error("json: not an unsigned integer: " + text);
        return v;
    }
    bool boolean() const {
        if (kind != kBool) throw std::runtime_error("json: not a boolean");
        return b;
    }
};

class Parser {
public:
    explicit Parser(const std::string& s) : s_(s) {}

    Value parse() {
        Value v = value();
        ws();
        if (i_ != s_.size()) fail("trailing data");
        return v;
    }

private:
    [[noreturn]] void fail(const char* what) {
        throw std::runtime_error(std::string("json: ") + what + " at offset " + std::to_string(i_));
    }
    void ws() {
        while (i_ < s_.size() && (s_[i_] == ' ' || s_[i_] == '\n' || s_[i_] == '\r' || s_[i_] == '\t')) i_++;
    }
    bool eat(char c) {
        ws();
        if (i_ < s_.size() && s_[i_] == c) {
            i_++;
            return true;
        }
        return false;
    }
    void expect(char c) {
        if (!eat(c)) fail("unexpected character");
    }
    bool word(const char* w) {
        std::string ws(w);
        if (s_.compare(i_, ws.size(), ws) == 0) {
            i_ += ws.size();
            return true;
        }
        return false;
    }

    Value value() {
        ws();
        if (i_ >= s_.size()) fail("unexpected end");
        Value v;
        char c = s_[i_];
        if (c == '{') {
            i_++;
            v.kind = Value::kObject;
            if (eat('}')) return v;
            do {
                ws();
                std::string key = string();
                expect(':');
                v.fields[key] = value();
            } while (eat(','));
            expect('}');
        } else if (c == '[') {
            i_++;
            v.kind = Value::kArray;
            if (eat(']')) return v;
            do {
                v.items.push_back(value());
            } while (eat(','));
            expect(']');
        } else if (c == '"') {
            v.kind = Value::kString;
            v.text = string();
        } else if (word("true")) {
            v.kind = Value::kBool;
            v.b = true;
        } else if (word("false")) {
            v.kind = Value::kBool;
        } else if (word("null")) {
        } else {
            v.kind = Value::kNumber;
            std::size_t start = i_;
            while (i_ < s_.size() && (std::isdigit(static_cast<unsigned char>(s_[i_])) || s_[i_] == '-' ||
                                      s_[i_] == '+' || s_[i_] == '.' || s_[i_] == 'e' || s_[i_] == 'E'))
                i_++;
            if (i_ == start) fail("unexpected character");
            v.text = s_.substr(start, i_ - start);
        }
        return v;
    }

    unsigned hex4() {
        if (i_ + 4 > s_.size()) fail("short \\u escape");
        unsigned v = static_cast<unsigned>(std::stoul(s_.substr(i_, 4), nullptr, 16));
        i_ += 4;
        return v;
    }

    void utf8(std::string& out, unsigned cp) {
        if (cp < 0x80) {
            out += static_cast<char>(cp);
        } else if (cp < 0x800) {
            out += static_cast<char>(0xc0 | (cp >> 6));
            out += static_cast<char>(0x80 | (cp & 0x3f));
        } else if (cp < 0x10000) {
            out += static_cast<char>(0xe0 | (cp >> 12));
            out += static_cast<char>(0x80 | ((cp >> 6) & 0x3f));
            out += static_cast<char>(0x80 | (cp & 0x3f));
        } else {
            out += static_cast<char>(0xf0 | (cp >> 18));
            out += static_cast<char>(0x80 | ((cp >> 12) & 0x3f));
            out += static_cast<char>(0x80 | ((cp >> 6) & 0x3f));
            out += static_cast<char>(0x80 | (cp & 0x3f));
        }
    }

    std::string string() {
        if (i_ >= s_.size() || s_[i_] != '"') fail("want a string");
        i_++;
        std::string out;
        while (i_ < s_.size() && s_[i_] != '"') {
            char c = s_[i_++];
            if (c != '\\') {
                out += c;
                continue;
            }
            if (i_ >= s_.size()) fail("bad escape");
            char e = s_[i_++];
            switch (e) {
            case '"':
            case '\\':
            case '/':
                out += e;
                break;
            case 'b':
                out += '\b';
                break;
            case 'f':
                out += '\f';
                break;
            case 'n':
                out += '\n';
                break;
            case 'r':
                out += '\r';
                break;
            case 't':
                out += '\t';
                break;
            case 'u': {
                unsigned cp = hex4();
                if (cp >= 0xd800 && cp < 0xdc00 && word("\\u")) {
                    unsigned lo = hex4();
                    cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
                }
                utf8(out, cp);
                break;
            }
            default:
                fail("bad escape");
            }
        }
        if (i_ >= s_.size()) fail("unterminated string");
        i_++;
        return out;
    }

    const std::string& s_;
    std::size_t i_ = 0;
};

inline Value parse(const std::string& s) { return Parser(s).parse(); }

}  // namespace json
