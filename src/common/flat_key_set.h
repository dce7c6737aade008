// A set of int64 keys held in one flat array (open addressing, linear probing, backward-shift
// deletion, no tombstones): 8 bytes a slot, between 1/8 and 3/4 full, so about 11-21 bytes a
// key where std::unordered_set takes about 40. The local queue keeps every queued delivery key
// in one, to ignore duplicates; the array grows and shrinks with the queue. The simulator keeps
// 64-bit hashes of addresses and delivery ids in them.
//
// Not thread-safe: the owner locks.
#pragma once

#include <cstddef>
#include <cstdint>
#include <limits>
#include <vector>

namespace herald {

class FlatKeySet {
 public:
  bool contains(int64_t key) const;
  bool insert(int64_t key);  // false if it was there already
  bool erase(int64_t key);   // false if it was not there
  size_t size() const { return size_ + (has_empty_key_ ? 1 : 0); }
  size_t capacity() const { return slots_.size(); }  // slots allocated

 private:
  // Marks a free slot; the key of that value, should it ever be used, is kept aside.
  static constexpr int64_t kEmpty = std::numeric_limits<int64_t>::min();

  size_t Home(int64_t key) const;
  size_t Find(int64_t key) const;  // its slot, or the free slot where it would go
  void Rehash(size_t capacity);

  std::vector<int64_t> slots_;  // size 0 or a power of two
  size_t size_ = 0;             // keys in slots_
  bool has_empty_key_ = false;
};

}  // namespace herald
