#include "events/token_ring.h"

#include <fmt/format.h>

#include <atomic>
#include <cstring>
#include <iterator>

#include "common/shared_segment.h"
#include "common/versioned_segment.h"
#include "kvtier/checksum.h"

namespace kvtier {
namespace {

constexpr uint64_t kMagic = 0x6b76746f6b656e73ULL;  // "kvtokens"
constexpr uint32_t kVersion = 2;
constexpr uint32_t kMaxRecords = 1U << 24;
constexpr uint32_t kMaxTokensLimit = 65536;

// Words of a slot are written with release stores and read with acquire loads (plain moves on
// x86): a reader that sees any word of a newer write therefore also sees that write's odd seq
// when it checks the seq again. No standalone fences, so ThreadSanitizer checks the protocol.
void store_word(uint64_t& w, uint64_t v) { std::atomic_ref<uint64_t>(w).store(v, std::memory_order_release); }
uint64_t load_word(uint64_t& w) { return std::atomic_ref<uint64_t>(w).load(std::memory_order_acquire); }

uint64_t record_checksum(const BlockKey& key, std::span<const TokenId> tokens) {
  return xxh3_64(tokens.data(), tokens.size_bytes()) ^ (key.hi * 0x9E3779B97F4A7C15ULL) ^ key.lo ^ tokens.size();
}

// An engine's id, in the entry of its index process slot. owner_tag 0: none. The id words are
// written before the tag (release) and read after it (acquire), then the tag is checked again.
struct EngineEntry {
  std::atomic<uint32_t> owner_tag;
  uint32_t length;
  uint64_t id[TokenRing::kMaxEngineIdBytes / 8];
};
static_assert(sizeof(EngineEntry) == 64);

struct Header {
  uint64_t magic;
  uint32_t version;
  uint32_t records;
  uint32_t max_tokens;
  uint32_t slot_bytes;
  alignas(64) std::atomic<uint64_t> head;  // next ticket
  alignas(64) EngineEntry engines[TokenRing::kEngineSlots];
};

// A slot: the seqlock word (2t+1 while ticket t writes it, 2t+2 once written), the record, then
// max_tokens token ids packed two to a word.
struct Slot {
  std::atomic<uint64_t> seq;
  uint64_t key_hi;
  uint64_t key_lo;
  uint64_t count;
  uint64_t checksum;
};

// The token words right after the slot's fixed part.
uint64_t* token_words(Slot& s) { return reinterpret_cast<uint64_t*>(reinterpret_cast<uint8_t*>(&s) + sizeof(Slot)); }

uint32_t slot_bytes_for(uint32_t max_tokens) {
  return static_cast<uint32_t>(round_up(sizeof(Slot) + (uint64_t{max_tokens} + 1) / 2 * 8, 64));
}

constexpr SegmentFormat kFormat{"token ring", kMagic, kVersion, kVersion, sizeof(Header)};
// The daemon creates the ring when it starts publishing; a client attaching meanwhile waits this long.
constexpr auto kCreatorWait = std::chrono::seconds(1);

Header& header_of(const SharedSegment& seg) { return *static_cast<Header*>(seg.address()); }

Slot& slot_of(const SharedSegment& seg, uint64_t ticket) {
  const Header& h = header_of(seg);
  auto* base = static_cast<uint8_t*>(seg.address()) + round_up(sizeof(Header), 64);
  return *reinterpret_cast<Slot*>(base + (ticket & (h.records - 1)) * uint64_t{h.slot_bytes});
}

}  // namespace

TokenRing::TokenRing(std::unique_ptr<SharedSegment> seg) : seg_(std::move(seg)) {}
TokenRing::~TokenRing() = default;

TokenRing::Geometry TokenRing::geometry() const {
  const Header& h = header_of(*seg_);
  return {h.records, h.max_tokens};
}

Result<std::unique_ptr<TokenRing>> TokenRing::attach(const std::string& name) {
  KVTIER_ASSIGN_OR_RETURN(AttachedSegment attached, attach_segment(name, kFormat, kCreatorWait));
  const auto* h = static_cast<const Header*>(attached.segment->address());
  if (h->records == 0 || (h->records & (h->records - 1)) != 0 || h->slot_bytes != slot_bytes_for(h->max_tokens) ||
      attached.segment->size() < round_up(sizeof(Header), 64) + uint64_t{h->records} * h->slot_bytes) {
    return Status::corruption(fmt::format("token ring '{}' geometry does not add up", name));
  }
  return std::unique_ptr<TokenRing>(new TokenRing(std::move(attached.segment)));
}

Result<std::unique_ptr<TokenRing>> TokenRing::open_or_create(const std::string& name, Geometry g) {
  if (g.records == 0 || g.records > kMaxRecords || (g.records & (g.records - 1)) != 0) {
    return Status::invalid_argument(
        fmt::format("token ring records must be a power of two in [1, {}], got {}", kMaxRecords, g.records));
  }
  if (g.max_tokens == 0 || g.max_tokens > kMaxTokensLimit) {
    return Status::invalid_argument(
        fmt::format("token ring max_tokens must be in [1, {}], got {}", kMaxTokensLimit, g.max_tokens));
  }
  auto attached = attach(name);
  if (attached.ok()) {
    const Geometry have = (*attached)->geometry();
    if (have.records == g.records && have.max_tokens == g.max_tokens) return attached;
  }
  if (attached.ok() || attached.status().code() != StatusCode::kNotFound) {
    // Another geometry or format: start a new ring. Clients still mapping the old one write into
    // it unread until they open the node again.
    attached = Status::not_found("replaced");
    KVTIER_RETURN_IF_ERROR(destroy(name));
  }
  const uint32_t slot_bytes = slot_bytes_for(g.max_tokens);
  auto seg = create_segment(name, round_up(sizeof(Header), 64) + uint64_t{g.records} * slot_bytes, kFormat);
  if (!seg.ok()) return seg.status();
  auto* h = static_cast<Header*>((*seg)->address());
  h->records = g.records;
  h->max_tokens = g.max_tokens;
  h->slot_bytes = slot_bytes;
  publish_segment(**seg, kFormat);
  return std::unique_ptr<TokenRing>(new TokenRing(std::move(seg).value()));
}

Status TokenRing::destroy(const std::string& name) { return SharedSegment::destroy(name); }

bool TokenRing::record(const BlockKey& key, std::span<const TokenId> tokens) {
  Header& h = header_of(*seg_);
  if (tokens.size() > h.max_tokens) return false;
  const uint64_t ticket = h.head.fetch_add(1, std::memory_order_relaxed);
  Slot& s = slot_of(*seg_, ticket);
  // A slot's seq only ever grows: a writer the ring lapped while it was stopped finds a later
  // ticket's seq there and gives its record up, instead of hiding the later one for good.
  uint64_t seq = s.seq.load(std::memory_order_relaxed);
  do {
    if (seq >= 2 * ticket + 1) return false;
  } while (!s.seq.compare_exchange_weak(seq, 2 * ticket + 1, std::memory_order_relaxed));
  store_word(s.key_hi, key.hi);
  store_word(s.key_lo, key.lo);
  store_word(s.count, tokens.size());
  store_word(s.checksum, record_checksum(key, tokens));
  for (size_t i = 0; i < tokens.size(); i += 2) {
    const uint64_t hi = i + 1 < tokens.size() ? tokens[i + 1] : 0;
    store_word(token_words(s)[i / 2], tokens[i] | (hi << 32));
  }
  // Unless a later ticket took the slot meanwhile (its words may be mixed with ours: the
  // checksum tells a reader).
  uint64_t open = 2 * ticket + 1;
  return s.seq.compare_exchange_strong(open, 2 * ticket + 2, std::memory_order_release, std::memory_order_relaxed);
}

bool TokenRing::register_engine(uint32_t owner_tag, std::string_view engine_id) {
  if (owner_tag == 0 || engine_id.empty() || engine_id.size() > kMaxEngineIdBytes ||
      engine_id.find('@') != std::string_view::npos) {
    return false;
  }
  EngineEntry& e = header_of(*seg_).engines[(owner_tag & 63) % kEngineSlots];
  e.owner_tag.store(0, std::memory_order_relaxed);
  uint64_t words[kMaxEngineIdBytes / 8] = {};
  std::memcpy(words, engine_id.data(), engine_id.size());
  std::atomic_ref<uint32_t>(e.length).store(static_cast<uint32_t>(engine_id.size()), std::memory_order_release);
  for (size_t i = 0; i < std::size(words); ++i) store_word(e.id[i], words[i]);
  e.owner_tag.store(owner_tag, std::memory_order_release);
  return true;
}

std::vector<std::pair<uint32_t, std::string>> TokenRing::engines() const {
  std::vector<std::pair<uint32_t, std::string>> out;
  for (EngineEntry& e : header_of(*seg_).engines) {
    const uint32_t tag = e.owner_tag.load(std::memory_order_acquire);
    if (tag == 0) continue;
    uint64_t words[kMaxEngineIdBytes / 8];
    for (size_t i = 0; i < std::size(words); ++i) words[i] = load_word(e.id[i]);
    const uint32_t length = std::atomic_ref<uint32_t>(e.length).load(std::memory_order_acquire);
    if (e.owner_tag.load(std::memory_order_relaxed) != tag || length > kMaxEngineIdBytes) continue;  // rewritten
    out.emplace_back(tag, std::string(reinterpret_cast<const char*>(words), length));
  }
  return out;
}

uint64_t TokenRing::head() const { return header_of(*seg_).head.load(std::memory_order_acquire); }

TokenRing::Read TokenRing::read(uint64_t ticket, TokenRecord* out) const {
  const Header& h = header_of(*seg_);
  if (ticket + h.records < head()) return Read::kLost;
  Slot& s = slot_of(*seg_, ticket);
  const uint64_t before = s.seq.load(std::memory_order_acquire);
  if (before < 2 * ticket + 2) return Read::kPending;
  if (before != 2 * ticket + 2) return Read::kLost;
  const BlockKey key{load_word(s.key_hi), load_word(s.key_lo)};
  const uint64_t count = load_word(s.count);
  const uint64_t checksum = load_word(s.checksum);
  if (count > h.max_tokens) return Read::kLost;
  out->key = key;
  out->tokens.resize(count);
  for (size_t i = 0; i < count; i += 2) {
    const uint64_t w = load_word(token_words(s)[i / 2]);
    out->tokens[i] = static_cast<TokenId>(w);
    if (i + 1 < count) out->tokens[i + 1] = static_cast<TokenId>(w >> 32);
  }
  if (s.seq.load(std::memory_order_relaxed) != before) return Read::kLost;
  if (record_checksum(key, out->tokens) != checksum) return Read::kLost;  // two writers overlapped
  return Read::kRecord;
}

}  // namespace kvtier
