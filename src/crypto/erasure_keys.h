// Keys that can be destroyed by time, for crypto-shredding what a database keeps after a delete.
//
// A user's PII is sealed with the key of the time bucket its consent ends in. Once every user
// of a bucket is erased, the bucket's key is destroyed: the bytes that the database still holds
// (PostgreSQL keeps deleted row versions until vacuum, and vacuum leaves some in the pages' free
// space) can then no longer be opened by anyone, the holder of the master key included.
//
// The keys are the leaves of a binary tree (GGM): each node's two children are keyed BLAKE2b
// hashes of it, so a node yields every key below it and nothing above or beside it. What is
// stored is the smallest set of nodes whose leaves are exactly the buckets from first() on (at
// most kDepth + 1 nodes, ~1.3 KB): destroying the keys of every bucket before t replaces that
// set by the one for t, and the old set, once gone from storage, cannot be recomputed from the
// new one. No per-user key is kept anywhere, and one small row per tenant changes.
//
// Thread-safety: a value type; const methods may run concurrently.
#pragma once

#include <cstdint>
#include <optional>
#include <vector>

#include "common/result.h"
#include "crypto/crypto.h"

namespace herald::crypto {

class ErasureKeys {
 public:
  static constexpr int kDepth = 32;  // 2^32 buckets
  static constexpr uint64_t kBuckets = uint64_t{1} << kDepth;

  // A fresh random tree with every bucket from `first` on.
  static ErasureKeys Create(uint64_t first);
  // From Serialize(): kInvalid "invalid_erasure_keys" on bytes it did not write.
  static Result<ErasureKeys> Parse(const Bytes& bytes);
  Bytes Serialize() const;

  // The first bucket whose key still exists.
  uint64_t first() const { return first_; }
  // The key of `bucket` (clamped to the last bucket); nullopt once destroyed (bucket < first()).
  std::optional<Key> Derive(uint64_t bucket) const;
  // Destroys the keys of every bucket before `bucket`: Derive() of them fails from now on. A
  // bucket at or before first() changes nothing.
  void DestroyBefore(uint64_t bucket);

  // The number of nodes kept (for tests).
  size_t nodes() const { return nodes_.size(); }

 private:
  struct Node {
    uint8_t depth = 0;    // 0 = the root, kDepth = a leaf
    uint64_t prefix = 0;  // the top `depth` bits of the buckets below it
    Key value{};
  };
  // The node at (depth, prefix), derived from the kept node above it; nullopt when none is.
  std::optional<Key> NodeValue(int depth, uint64_t prefix) const;

  uint64_t first_ = 0;
  std::vector<Node> nodes_;  // disjoint subtrees covering [first_, kBuckets)
};

}  // namespace herald::crypto
