// PII sealing for every store backend (DESIGN §4.5), done on the calling thread before a write
// is queued, so a backend's writer only does SQL: names and addresses encrypted with the
// tenant's PiiCipher, blind indexes for address equality, device ids minted, and the rules a
// store owns about a user as a whole. Thread-safe (pure functions of their arguments), except
// DeviceIds, which belongs to one caller.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/result.h"
#include "crypto/crypto.h"
#include "model/model.h"

namespace herald {

inline constexpr size_t kMaxDevices = 16;

// The encryption context of a device address: "addr:<channel>".
std::string AddressContext(Channel channel);

struct SealedDevice {
  std::string id;  // freshly minted; a PUT that keeps the address keeps the stored id instead
  Channel channel = Channel::kEmail;
  crypto::Bytes address_sealed;
  crypto::Bytes address_bidx;
  bool disabled = false;
};

struct SealedUser {
  std::string external_id;
  crypto::Bytes name_sealed;
  bool opt_in = true;
  UnixMillis consent_from = 0;
  UnixMillis consent_until = 0;
  std::vector<SealedDevice> devices;
  std::vector<std::string> groups;  // sorted, unique
};

// Device ids ("dev_" + 20 base32 characters) for many devices from one CSPRNG call: a system
// call per id would cost more than sealing the device. Not thread-safe; one per caller.
class DeviceIds {
 public:
  explicit DeviceIds(size_t count);
  std::string Next();  // more than `count` calls still work (one CSPRNG call per extra id)

 private:
  std::string random_;
  size_t used_ = 0;
};

// `seal` encrypts the address and `index` keys its blind index: on SQLite both are the tenant's
// cipher; on PostgreSQL `seal` is the cipher of the user's erasure bucket
// (crypto/erasure_keys.h) and `index` the tenant's, so that an index stays comparable when the
// user's consent window moves.
SealedDevice SealDevice(const Device& device, const crypto::PiiCipher& seal,
                        const crypto::PiiCipher& index, std::string id);
inline SealedDevice SealDevice(const Device& device, const crypto::PiiCipher& cipher,
                               std::string id) {
  return SealDevice(device, cipher, cipher, std::move(id));
}

// Seals `user` and checks the rules the store owns: at most 16 devices ("too_many_devices"), no
// channel+address twice ("duplicate_device"), consent_from < consent_until
// ("invalid_consent_window") and consent_until in the future ("consent_expired"): a user whose
// consent already ended must not be written at all. All kInvalid.
// `seal` and `index` as for SealDevice.
Result<SealedUser> SealUser(const User& user, const crypto::PiiCipher& seal,
                            const crypto::PiiCipher& index, UnixMillis now, DeviceIds& ids);
inline Result<SealedUser> SealUser(const User& user, const crypto::PiiCipher& cipher,
                                   UnixMillis now, DeviceIds& ids) {
  return SealUser(user, cipher, cipher, now, ids);
}

// The encryption context of a user name.
inline constexpr std::string_view kNameContext = "name";

}  // namespace herald
