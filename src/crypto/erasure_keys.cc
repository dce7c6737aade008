#include "crypto/erasure_keys.h"

#include <sodium.h>

#include <algorithm>

namespace herald::crypto {
namespace {

constexpr uint8_t kFormat = 1;
constexpr size_t kNodeBytes = 1 + 8 + kKeyBytes;

// A child of `parent`: keyed BLAKE2b-256 of one byte, 0 for the left child and 1 for the right.
Key Child(const Key& parent, uint64_t bit) {
  Key out{};
  const uint8_t message = bit != 0 ? 1 : 0;
  crypto_generichash(out.data(), out.size(), &message, 1, parent.data(), parent.size());
  return out;
}

void PutU64(Bytes& out, uint64_t v) {
  for (int i = 7; i >= 0; --i) out.push_back(static_cast<uint8_t>(v >> (8 * i)));
}

uint64_t GetU64(const uint8_t* p) {
  uint64_t v = 0;
  for (int i = 0; i < 8; ++i) v = (v << 8) | p[i];
  return v;
}

Error Invalid() {
  return MakeError(ErrorKind::kInvalid, "invalid_erasure_keys",
                   "The stored erasure keys are damaged or of an unknown format.");
}

}  // namespace

ErasureKeys ErasureKeys::Create(uint64_t first) {
  ErasureKeys keys;
  keys.nodes_.push_back(Node{0, 0, RandomKey()});
  keys.DestroyBefore(first);
  return keys;
}

std::optional<Key> ErasureKeys::NodeValue(int depth, uint64_t prefix) const {
  for (const Node& n : nodes_) {
    if (n.depth > depth || (prefix >> (depth - n.depth)) != n.prefix) continue;
    Key value = n.value;
    for (int d = n.depth; d < depth; ++d) value = Child(value, (prefix >> (depth - d - 1)) & 1);
    return value;
  }
  return std::nullopt;
}

std::optional<Key> ErasureKeys::Derive(uint64_t bucket) const {
  bucket = std::min(bucket, kBuckets - 1);
  if (bucket < first_) return std::nullopt;
  return NodeValue(kDepth, bucket);
}

void ErasureKeys::DestroyBefore(uint64_t bucket) {
  bucket = std::min(bucket, kBuckets - 1);
  if (bucket <= first_) return;
  // The cover of [bucket, kBuckets): walking from the root to the leaf `bucket`, every right
  // child the path passes by, and the leaf itself. Each lies inside a kept node, since the old
  // cover holds every bucket from first_ < bucket on.
  std::vector<Node> cover;
  for (int d = 0; d < kDepth; ++d) {
    const uint64_t here = bucket >> (kDepth - d);
    if (((bucket >> (kDepth - d - 1)) & 1) == 0) {
      const uint64_t right = (here << 1) | 1;
      cover.push_back(Node{static_cast<uint8_t>(d + 1), right, {}});
    }
  }
  cover.push_back(Node{static_cast<uint8_t>(kDepth), bucket, {}});
  for (Node& n : cover) {
    std::optional<Key> value = NodeValue(n.depth, n.prefix);
    n.value = value.value_or(Key{});  // always found: see above
  }
  sodium_memzero(nodes_.data(), nodes_.size() * sizeof(Node));
  nodes_ = std::move(cover);
  first_ = bucket;
}

Bytes ErasureKeys::Serialize() const {
  Bytes out;
  out.reserve(1 + 8 + 1 + nodes_.size() * kNodeBytes);
  out.push_back(kFormat);
  PutU64(out, first_);
  out.push_back(static_cast<uint8_t>(nodes_.size()));
  for (const Node& n : nodes_) {
    out.push_back(n.depth);
    PutU64(out, n.prefix);
    out.insert(out.end(), n.value.begin(), n.value.end());
  }
  return out;
}

Result<ErasureKeys> ErasureKeys::Parse(const Bytes& bytes) {
  if (bytes.size() < 10 || bytes[0] != kFormat) return Invalid();
  ErasureKeys keys;
  keys.first_ = GetU64(bytes.data() + 1);
  const size_t count = bytes[9];
  if (count == 0 || count > kDepth + 1 || bytes.size() != 10 + count * kNodeBytes) {
    return Invalid();
  }
  for (size_t i = 0; i < count; ++i) {
    const uint8_t* p = bytes.data() + 10 + i * kNodeBytes;
    Node n;
    n.depth = p[0];
    n.prefix = GetU64(p + 1);
    if (n.depth > kDepth || (n.depth < 64 && n.prefix >> n.depth != 0)) return Invalid();
    std::copy(p + 9, p + 9 + kKeyBytes, n.value.begin());
    keys.nodes_.push_back(n);
  }
  if (keys.first_ >= kBuckets) return Invalid();
  return keys;
}

}  // namespace herald::crypto
