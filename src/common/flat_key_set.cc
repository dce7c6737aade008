#include "common/flat_key_set.h"

#include <algorithm>
#include <utility>

namespace herald {
namespace {

constexpr size_t kMinCapacity = 16;

// The splitmix64 finalizer: row keys are dense integers, so spread them over the table.
uint64_t Mix(uint64_t x) {
  x ^= x >> 30;
  x *= 0xbf58476d1ce4e5b9ULL;
  x ^= x >> 27;
  x *= 0x94d049bb133111ebULL;
  x ^= x >> 31;
  return x;
}

}  // namespace

size_t FlatKeySet::Home(int64_t key) const {
  return Mix(static_cast<uint64_t>(key)) & (slots_.size() - 1);
}

size_t FlatKeySet::Find(int64_t key) const {
  const size_t mask = slots_.size() - 1;
  size_t i = Home(key);
  while (slots_[i] != key && slots_[i] != kEmpty) i = (i + 1) & mask;
  return i;
}

bool FlatKeySet::contains(int64_t key) const {
  if (key == kEmpty) return has_empty_key_;
  return !slots_.empty() && slots_[Find(key)] == key;
}

bool FlatKeySet::insert(int64_t key) {
  if (key == kEmpty) return !std::exchange(has_empty_key_, true);
  if ((size_ + 1) * 4 > slots_.size() * 3) Rehash(std::max(kMinCapacity, slots_.size() * 2));
  size_t i = Find(key);
  if (slots_[i] == key) return false;
  slots_[i] = key;
  ++size_;
  return true;
}

bool FlatKeySet::erase(int64_t key) {
  if (key == kEmpty) return std::exchange(has_empty_key_, false);
  if (slots_.empty()) return false;
  size_t hole = Find(key);
  if (slots_[hole] != key) return false;
  // Shift back the keys of the run after the hole that may live there (whose home slot is not
  // between the hole and where they are), so that every probe still finds its key.
  const size_t mask = slots_.size() - 1;
  for (size_t j = (hole + 1) & mask; slots_[j] != kEmpty; j = (j + 1) & mask) {
    if (((j - Home(slots_[j])) & mask) >= ((j - hole) & mask)) {
      slots_[hole] = slots_[j];
      hole = j;
    }
  }
  slots_[hole] = kEmpty;
  --size_;
  if (slots_.size() > kMinCapacity && size_ * 8 < slots_.size()) Rehash(slots_.size() / 2);
  return true;
}

void FlatKeySet::Rehash(size_t capacity) {
  std::vector<int64_t> old = std::exchange(slots_, std::vector<int64_t>(capacity, kEmpty));
  for (int64_t key : old) {
    if (key != kEmpty) slots_[Find(key)] = key;
  }
}

}  // namespace herald
