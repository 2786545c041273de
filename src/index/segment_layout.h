// The index segment's bytes: what every process that maps it agrees on. docs/index.md draws it.
//
//   [ SegmentHeader | ProcessSlot × kMaxProcesses | Journal | ChangeRecord × ring | tag × slots | IndexEntry × slots
//     | ghost cell × ghost_slots | ReuseLearning | ghost last use × ghost_slots ]
//
// Everything here is plain data at fixed offsets (no pointers), so any process can map the
// segment at any address. Fields written by one process while others read them are accessed
// through std::atomic or std::atomic_ref.
#pragma once

#include <pthread.h>

#include <atomic>
#include <cstddef>
#include <cstdint>

#include "kvtier/tier.h"

namespace kvtier::index {

inline constexpr uint64_t kSegmentMagic = 0x3130584449544B56ULL;  // "VKTIDX01" little-endian
// Format 2 added the ghost cells (evicted_uses.h); format 3 the reuse learning and the ghost cells'
// times (reuse_learning.h). Older segments are still read, without what they lack.
inline constexpr uint32_t kSegmentFormatVersion = 3;
inline constexpr uint32_t kOldestReadableFormatVersion = 1;
inline constexpr uint32_t kMaxProcesses = 32;  // one pin bit each in IndexEntry::ctl
inline constexpr uint64_t kNoSlot = ~uint64_t{0};
// Ghost cells per entry of capacity: the index remembers the use counts of about four times as many
// evicted blocks as it holds, at 2 bytes a cell (8 bytes per entry of capacity, an eighth of the
// 64-byte entries).
inline constexpr uint64_t kGhostSlotsPerEntry = 4;

// --- IndexEntry::ctl: version (high 32 bits) | pin mask (low 32 bits) -------------------------
// An odd version means a writer is changing the entry. Pinners CAS a pin bit in only while the
// version is even and unchanged, so a writer that makes the version odd freezes the pin set:
// eviction can never race a pin, and an entry moved by a deletion carries its pins exactly.
inline constexpr uint64_t kVersionUnit = uint64_t{1} << 32;
inline constexpr uint64_t kPinMask = kVersionUnit - 1;
constexpr bool version_odd(uint64_t ctl) { return (ctl & kVersionUnit) != 0; }
constexpr uint32_t version_of(uint64_t ctl) { return static_cast<uint32_t>(ctl >> 32); }
constexpr uint32_t pins_of(uint64_t ctl) { return static_cast<uint32_t>(ctl & kPinMask); }

// --- Reuse learning (reuse_learning.h): what the index has seen of blocks coming back -------
// Per class of block (its use count) and age bucket (log-spaced ticks since its last use): how
// many came back at that age (hits, and evicted blocks inserted again) and how many were forgotten
// at that age without coming back; from these, each class's expected hits per tick of residence
// from each age on (the hit density the "hit-density" policy ranks by).
inline constexpr uint32_t kReuseClasses = 6;  // used 1, 2, 3, 4, 5, 6+ times
inline constexpr uint32_t kAgeBuckets = 128;  // ages 0..7 one each, then four per octave up to 2^32

struct alignas(64) ReuseLearning {
  uint64_t inserts_since_update;                   // writer only
  uint64_t updates;                                // densities computed so far; writer only
  uint32_t last_update_tick;                       // writer only
  uint32_t horizon_ticks;                          // returns later than this count as none (4 turnovers); writer only
  float density[kReuseClasses][kAgeBuckets];       // hits per tick from this age on; writer only
  uint32_t forgotten[kReuseClasses][kAgeBuckets];  // ghost cells overwritten before their block returned; writer only
  // The next ghost cell to look at for blocks gone longer than the horizon (evicted_uses.h); writer
  // only. In what was padding before `returned`: format-3 segments made without it read it as 0.
  uint64_t ghost_hand;
  // Added to by every process that acquires a block (relaxed, without the writer lock) and by the
  // writer for blocks that return after eviction; halved by the writer at each update.
  alignas(64) uint32_t returned[kReuseClasses][kAgeBuckets];
};
// Format 3's layout, which ghost_hand did not change.
static_assert(offsetof(ReuseLearning, returned) == 6208 && sizeof(ReuseLearning) == 9280);

// --- Tags: one byte per slot, a fingerprint of the key in it (0 = empty) -----------------------
// Probes scan tags (64 to a cache line, mostly cache-resident) and read a 64-byte entry only when
// its tag matches, so a hit costs about one memory line and a miss about none. Tags are hints:
// the entry's seqlock and full key decide. Taken from key_hi, whose bits the home slot does not use.
constexpr uint8_t tag_of(uint64_t key_hi) { return static_cast<uint8_t>((key_hi >> 56) | 1); }

// Entry flags.
inline constexpr uint16_t kFlagCountedInParent = 1;  // this block incremented its parent's child_count

// One block: one cache line. tiers == 0 means the slot is empty.
struct alignas(64) IndexEntry {
  std::atomic<uint64_t> ctl;  // version | pins; see above
  uint64_t key_hi;
  uint64_t key_lo;         // also picks the home slot
  uint64_t parent_lo;      // low 64 bits of the parent's key (finds it for child_count upkeep)
  uint64_t ssd_loc;        // SSD tier locator (opaque to the index)
  uint32_t host_loc;       // host tier locator (opaque to the index)
  uint32_t hbm;            // HBM holder: process slot (high 8 bits) | engine block id (low 24 bits)
  uint32_t payload_bytes;  // uncompressed block size
  uint32_t last_access;    // ticks (1/1024 s) since the segment was created; LRU age
  uint16_t ns_id;          // namespace id, assigned by the node
  uint16_t child_count;    // cached blocks whose parent this is (prefix-aware eviction)
  uint8_t tiers;           // bit per Tier (tier_bit); 0 = empty slot
  uint8_t freq;            // saturating access count (admission, frequency)
  uint16_t flags;
};
static_assert(sizeof(IndexEntry) == 64, "an index entry is exactly one cache line");
static_assert(std::atomic<uint64_t>::is_always_lock_free);

// A process-private copy of an entry's data fields.
struct EntryImage {
  uint64_t key_hi = 0, key_lo = 0, parent_lo = 0, ssd_loc = 0;
  uint32_t host_loc = 0, hbm = 0, payload_bytes = 0, last_access = 0;
  uint16_t ns_id = 0, child_count = 0;
  uint8_t tiers = 0, freq = 0;
  uint16_t flags = 0;
};

// Node-wide counters. Written only under the writer lock (absolute values through the journal,
// so a replay after a crash is idempotent); read lock-free by stats().
struct Counters {
  uint64_t entries = 0;
  uint64_t tier_entries[kNumTiers] = {};
  uint64_t tier_bytes[kNumTiers] = {};
  uint64_t inserts = 0;
  uint64_t removes = 0;
  uint64_t evictions = 0;
  uint64_t demotions = 0;
};

// --- Write journal: a redo record per mutation (docs/index.md, "Crash story") -----------------
enum class JournalOp : uint32_t {
  kNone = 0,
  kWrite = 1,            // overwrite slot's data fields with image (pins untouched)
  kClearIfUnpinned = 2,  // empty the slot unless pinned; if pinned the whole record is void
  kWriteIfUnpinned = 3,  // like kWrite, unless pinned (a tier is being taken away)
  kMove = 4,             // slot ← src_slot's entry (image), pins carried, src emptied
};

struct JournalWrite {
  JournalOp op = JournalOp::kNone;
  uint32_t reserved = 0;
  uint64_t slot = kNoSlot;
  uint64_t src_slot = kNoSlot;
  EntryImage image;
};

// One residency change, packed into words so it can be copied with relaxed atomics.
struct ChangeRecordBody {
  uint64_t key_hi = 0, key_lo = 0, parent_lo = 0;
  uint32_t payload_bytes = 0;
  uint16_t ns_id = 0;
  uint8_t kind = 0;  // IndexChange::Kind
  uint8_t tiers_before = 0;
  uint64_t tiers_after = 0;  // low byte used; a whole word keeps the body a multiple of 8 bytes
};
inline constexpr size_t kChangeWords = sizeof(ChangeRecordBody) / 8;
static_assert(sizeof(ChangeRecordBody) % 8 == 0);

struct JournalRecord {
  uint32_t num_writes = 0;
  uint32_t has_change = 0;
  JournalWrite writes[2];
  uint64_t continue_shift_from = kNoSlot;  // a hole the backward-shift deletion still has to fill
  Counters counters_after;
  uint64_t ring_head_after = 0;
};

// Two records so the next step of a multi-step deletion is written beside the one in force and
// switched in with a single store: at every instant exactly one complete record (or none) is active.
struct Journal {
  std::atomic<uint32_t> active;  // 0: none; 1 or 2: records[active - 1] must be (re)applied
  uint32_t reserved;
  JournalRecord records[2];
};

// --- Change ring: every residency change, in order, for the node's event log -----------------
struct alignas(64) ChangeRecord {
  std::atomic<uint64_t> seq;  // sequence number this slot holds; readers detect overwrites with it
  uint64_t words[kChangeWords];
};
static_assert(sizeof(ChangeRecord) == 64);

// --- Process slots --------------------------------------------------------------------------
enum class ProcessState : uint32_t { kFree = 0, kClaiming = 1, kLive = 2, kDraining = 3 };

struct alignas(64) ProcessSlot {
  // Held for the owner's whole life by a keeper thread. Robust: when the owner dies the kernel
  // marks it, and trylock by anyone returns EOWNERDEAD. Works across PID namespaces.
  pthread_mutex_t liveness;
  std::atomic<uint32_t> state;
  uint32_t pid;                      // for operators only; liveness never trusts pids
  std::atomic<uint64_t> generation;  // bumped at every join: a reclaim checks it is reclaiming whom it judged dead
  uint64_t attached_at;              // ticks
};

struct alignas(64) AlignedCounter {
  std::atomic<uint64_t> value;
};

struct alignas(4096) SegmentHeader {
  uint64_t magic;
  uint32_t format_version;
  uint32_t entry_bytes;   // sizeof(IndexEntry): layout check at attach
  uint32_t header_bytes;  // sizeof(SegmentHeader)
  uint32_t max_processes;
  uint64_t capacity;      // live entries at most
  uint64_t slots;         // table size (capacity × 5/4)
  uint64_t ring_records;  // change ring size
  uint64_t total_bytes;
  uint64_t process_table_offset, journal_offset, ring_offset, tags_offset, table_offset;
  uint64_t node_id;         // hash of node_name
  uint64_t creation_epoch;  // wall-clock ns at creation: a new segment is a new epoch
  uint64_t created_monotonic_ns;
  char node_name[64];
  std::atomic<uint32_t> ready;  // set last at creation; attachers wait for it
  // Nonzero: now_ticks() is manual_now (IndexOptions::manual_clock). Zero in segments made
  // before the field existed, which is the monotonic clock.
  uint32_t manual_clock;
  std::atomic<uint32_t> manual_now;

  alignas(64) pthread_mutex_t writer_lock;      // robust, process-shared
  alignas(64) AlignedCounter shift_seq;         // odd while a backward-shift deletion moves entries
  alignas(64) std::atomic<uint32_t> live_mask;  // process slots that are live
  std::atomic<uint32_t> draining_mask;          // dead processes whose pin bits are inert
  std::atomic<uint64_t> ring_head;              // next change sequence number
  std::atomic<uint64_t> clock_hand;             // eviction scan position
  std::atomic<uint64_t> recoveries;             // dead writers recovered
  std::atomic<uint64_t> processes_reclaimed;
  std::atomic<uint64_t> tier_capacity[kNumTiers];  // bytes; 0 = unlimited
  std::atomic<uint32_t> tier_high_permille[kNumTiers];
  std::atomic<uint32_t> tier_low_permille[kNumTiers];
  alignas(64) Counters counters;  // see Counters
  // Format 2: where the ghost cells are and how many (a power of two); zero in format 1.
  uint64_t ghosts_offset;
  uint64_t ghost_slots;
  // The node's eviction policy (index::recorded_policy_id), so every process evicts by the one the
  // daemon was configured with; zero (and in segments made before the field existed): the default.
  std::atomic<uint32_t> eviction_policy;
  // Format 3: where the ReuseLearning lies; the ghost cells' last uses (a uint32 each) follow it.
  uint64_t learning_offset;
  // The node's put admission (PutAdmission) plus one; zero, and in segments made before the field
  // existed: none recorded, the default.
  std::atomic<uint32_t> put_admission;
  // Puts the admission refused (each remembered as a block admitted and evicted at once).
  std::atomic<uint64_t> puts_not_admitted;
};
static_assert(sizeof(SegmentHeader) == 4096, "the header stays one page: format 1 segments keep their layout");

}  // namespace kvtier::index
