#include "store/sealed_user.h"

#include <algorithm>
#include <utility>

namespace herald {
namespace {

constexpr size_t kDeviceIdChars = 20;

Error Invalid(std::string code, std::string message, std::string field) {
  return MakeError(ErrorKind::kInvalid, std::move(code), std::move(message), std::move(field));
}

}  // namespace

std::string AddressContext(Channel channel) {
  std::string context = "addr:";
  context.append(ToString(channel));
  return context;
}

DeviceIds::DeviceIds(size_t count) : random_(crypto::RandomId("", count * kDeviceIdChars)) {}

std::string DeviceIds::Next() {
  if (used_ + kDeviceIdChars > random_.size()) return crypto::RandomId("dev_", kDeviceIdChars);
  std::string id = "dev_";
  id.append(random_, used_, kDeviceIdChars);
  used_ += kDeviceIdChars;
  return id;
}

SealedDevice SealDevice(const Device& device, const crypto::PiiCipher& seal,
                        const crypto::PiiCipher& index, std::string id) {
  std::string context = AddressContext(device.channel);
  SealedDevice d;
  d.id = std::move(id);
  d.channel = device.channel;
  d.address_sealed = seal.Seal(device.address, context);
  d.address_bidx = index.BlindIndex(device.address, context);
  d.disabled = device.disabled;
  return d;
}

Result<SealedUser> SealUser(const User& user, const crypto::PiiCipher& seal,
                            const crypto::PiiCipher& index, UnixMillis now, DeviceIds& ids) {
  if (user.devices.size() > kMaxDevices) {
    return Invalid("too_many_devices",
                   "A user has at most 16 devices; this one lists " +
                       std::to_string(user.devices.size()) + ".",
                   "devices");
  }
  if (user.consent_until <= user.consent_from) {
    return Invalid("invalid_consent_window", "consent_until must be after consent_from.",
                   "consent_until");
  }
  if (user.consent_until <= now) {
    return Invalid("consent_expired",
                   "consent_until is in the past; a user without consent cannot be stored "
                   "(delete the user instead).",
                   "consent_until");
  }
  SealedUser s;
  s.external_id = user.external_id;
  s.name_sealed = seal.Seal(user.name, kNameContext);
  s.opt_in = user.opt_in;
  s.consent_from = user.consent_from;
  s.consent_until = user.consent_until;
  s.devices.reserve(user.devices.size());
  for (size_t i = 0; i < user.devices.size(); ++i) {
    SealedDevice d = SealDevice(user.devices[i], seal, index, ids.Next());
    for (const SealedDevice& prev : s.devices) {
      if (prev.channel == d.channel && prev.address_bidx == d.address_bidx) {
        return Invalid("duplicate_device", "The user lists this device twice.",
                       "devices[" + std::to_string(i) + "].address");
      }
    }
    s.devices.push_back(std::move(d));
  }
  s.groups = user.groups;
  std::sort(s.groups.begin(), s.groups.end());
  s.groups.erase(std::unique(s.groups.begin(), s.groups.end()), s.groups.end());
  return s;
}

}  // namespace herald
