// A small SHA-256 (FIPS 180-4) for the example's CPU-bound job, so the
// example needs no crypto library. Not constant-time; not for secrets.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <string_view>

namespace example {

class Sha256 {
public:
    Sha256();
    void update(std::string_view data);
    std::array<std::uint8_t, 32> finish();

private:
    void block(const std::uint8_t* p);
    std::uint32_t h_[8];
    std::uint8_t buf_[64];
    std::size_t buf_len_ = 0;
    std::uint64_t total_ = 0;
};

// sha256 returns the 32-byte digest of data.
std::string sha256(std::string_view data);

// sha256_rounds hashes data, then each digest again, rounds times in all,
// like `hose worker -handler sha256:ROUNDS`.
std::string sha256_rounds(std::string_view data, long rounds);

}  // namespace example
