#include "model/phone_parse.h"

#include <phonenumbers/phonemetadata.pb.h>
#include <re2/re2.h>

#include <algorithm>
#include <charconv>
#include <cstdint>
#include <list>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

// libphonenumber's compiled-in metadata (its metadata.h, which Debian does not install): the
// serialized PhoneMetadataCollection that PhoneNumberUtil itself loads.
namespace i18n::phonenumbers {
int metadata_size();
const void* metadata_get();
}  // namespace i18n::phonenumbers

namespace herald::internal {
namespace {

using i18n::phonenumbers::PhoneMetadata;
using i18n::phonenumbers::PhoneMetadataCollection;
using i18n::phonenumbers::PhoneNumberDesc;
using i18n::phonenumbers::PhoneNumberUtil;
using Type = PhoneNumberUtil::PhoneNumberType;

// Parse's limits on the national significant number (kMinLengthForNsn, kMaxLengthForNsn); a
// number with fewer than three digits after the '+' is refused before the country code is read.
constexpr size_t kMinNsnDigits = 2;
constexpr size_t kMaxNsnDigits = 17;
constexpr size_t kMinDigitsAfterPlus = 3;

std::unique_ptr<RE2> CompilePattern(const std::string& pattern, bool longest_match = false) {
  RE2::Options options;
  options.set_log_errors(false);
  options.set_longest_match(longest_match);
  auto re = std::make_unique<RE2>(pattern, options);
  return re->ok() ? std::move(re) : nullptr;
}

// One PhoneNumberDesc as IsNumberMatchingDesc reads it: the possible lengths, then a full match
// of a non-empty national number pattern.
struct Desc {
  std::vector<int> lengths;
  std::unique_ptr<RE2> pattern;  // null: an empty pattern, which never matches
  bool ok = true;                // false: a pattern RE2 could not read

  explicit Desc(const PhoneNumberDesc& desc)
      : lengths(desc.possible_length().begin(), desc.possible_length().end()) {
    if (desc.national_number_pattern().empty()) return;
    pattern = CompilePattern(desc.national_number_pattern());
    ok = pattern != nullptr;
  }

  bool Matches(std::string_view nsn) const {
    if (!lengths.empty() &&
        std::find(lengths.begin(), lengths.end(), static_cast<int>(nsn.size())) == lengths.end()) {
      return false;
    }
    return pattern && RE2::FullMatch(re2::StringPiece(nsn.data(), nsn.size()), *pattern);
  }
};

// GetNumberTypeHelper's view of one region.
struct Region {
  Desc general, premium, toll_free, shared_cost, voip, personal, pager, uan, voicemail, fixed,
      mobile;
  bool same_mobile_and_fixed;
  std::unique_ptr<RE2> leading_digits;  // null when the region has none
  bool ok;

  explicit Region(const PhoneMetadata& m)
      : general(m.general_desc()),
        premium(m.premium_rate()),
        toll_free(m.toll_free()),
        shared_cost(m.shared_cost()),
        voip(m.voip()),
        personal(m.personal_number()),
        pager(m.pager()),
        uan(m.uan()),
        voicemail(m.voicemail()),
        fixed(m.fixed_line()),
        mobile(m.mobile()),
        same_mobile_and_fixed(m.same_mobile_and_fixed_line_pattern()) {
    ok = general.ok && premium.ok && toll_free.ok && shared_cost.ok && voip.ok && personal.ok &&
         pager.ok && uan.ok && voicemail.ok && fixed.ok && mobile.ok;
    if (m.has_leading_digits()) {
      leading_digits = CompilePattern(m.leading_digits());
      ok = ok && leading_digits != nullptr;
    }
  }

  // PhoneNumberUtil::GetNumberTypeHelper, step by step.
  Type TypeOf(std::string_view nsn) const {
    if (!general.Matches(nsn)) return PhoneNumberUtil::UNKNOWN;
    if (premium.Matches(nsn)) return PhoneNumberUtil::PREMIUM_RATE;
    if (toll_free.Matches(nsn)) return PhoneNumberUtil::TOLL_FREE;
    if (shared_cost.Matches(nsn)) return PhoneNumberUtil::SHARED_COST;
    if (voip.Matches(nsn)) return PhoneNumberUtil::VOIP;
    if (personal.Matches(nsn)) return PhoneNumberUtil::PERSONAL_NUMBER;
    if (pager.Matches(nsn)) return PhoneNumberUtil::PAGER;
    if (uan.Matches(nsn)) return PhoneNumberUtil::UAN;
    if (voicemail.Matches(nsn)) return PhoneNumberUtil::VOICEMAIL;
    if (fixed.Matches(nsn)) {
      return same_mobile_and_fixed || mobile.Matches(nsn) ? PhoneNumberUtil::FIXED_LINE_OR_MOBILE
                                                          : PhoneNumberUtil::FIXED_LINE;
    }
    if (!same_mobile_and_fixed && mobile.Matches(nsn)) return PhoneNumberUtil::MOBILE;
    return PhoneNumberUtil::UNKNOWN;
  }
};

// Everything Parse and GetNumberType consult for one geographic calling code, compiled on first
// use (most imports see a handful of countries).
class CallingCode {
 public:
  CallingCode(const PhoneMetadata* main, std::vector<const PhoneMetadata*> regions)
      : main_(main), metadata_(std::move(regions)) {}

  // Null when a pattern could not be compiled: the code then stays with libphonenumber.
  const CallingCode* Ready() const {
    std::call_once(once_, [this] { Compile(); });
    return ok_ ? this : nullptr;
  }

  // Parse strips a national prefix (or rewrites a carrier code) only where the rule matches a
  // non-empty start of the number. The longest match decides: if any non-empty match exists,
  // the fast reading declines, whichever match Parse's engine would pick.
  bool PrefixRuleMayApply(std::string_view nsn) const {
    if (!national_prefix_) return false;
    re2::StringPiece input(nsn.data(), nsn.size());
    return RE2::Consume(&input, *national_prefix_) && input.size() < nsn.size();
  }

  // GetRegionCodeForNumberFromRegionList, then GetNumberTypeHelper of the region found.
  Type TypeOf(std::string_view nsn) const {
    if (regions_.size() == 1) return regions_.front()->TypeOf(nsn);
    for (const auto& region : regions_) {
      if (region->leading_digits) {
        re2::StringPiece input(nsn.data(), nsn.size());
        if (RE2::Consume(&input, *region->leading_digits)) return region->TypeOf(nsn);
      } else if (const Type type = region->TypeOf(nsn); type != PhoneNumberUtil::UNKNOWN) {
        return type;
      }
    }
    return PhoneNumberUtil::UNKNOWN;
  }

 private:
  void Compile() const {
    ok_ = true;
    const std::string& rule = main_->national_prefix_for_parsing();
    if (main_->has_national_prefix_for_parsing() && !rule.empty()) {
      national_prefix_ = CompilePattern(rule, /*longest_match=*/true);
      ok_ = national_prefix_ != nullptr;
    }
    for (const PhoneMetadata* m : metadata_) {
      regions_.push_back(std::make_unique<Region>(*m));
      ok_ = ok_ && regions_.back()->ok;
    }
  }

  const PhoneMetadata* main_;
  std::vector<const PhoneMetadata*> metadata_;  // in libphonenumber's order, main country first
  mutable std::once_flag once_;
  mutable bool ok_ = false;
  mutable std::unique_ptr<RE2> national_prefix_;
  mutable std::vector<std::unique_ptr<Region>> regions_;
};

class Table {
 public:
  Table() {
    if (!collection_.ParseFromArray(i18n::phonenumbers::metadata_get(),
                                    i18n::phonenumbers::metadata_size())) {
      return;  // no table: every number goes to libphonenumber
    }
    std::unordered_map<std::string, const PhoneMetadata*> by_region;
    for (const PhoneMetadata& m : collection_.metadata()) by_region.emplace(m.id(), &m);
    const PhoneNumberUtil& util = *PhoneNumberUtil::GetInstance();
    for (const PhoneMetadata& m : collection_.metadata()) {
      std::string main_region;
      util.GetRegionCodeForCountryCode(m.country_code(), &main_region);
      // One entry per code, from its main country (US for +1); "001" is a non-geographic
      // entity, which stays with libphonenumber.
      if (m.id() != main_region || m.id() == "001") continue;
      std::list<std::string> region_codes;
      util.GetRegionCodesForCountryCallingCode(m.country_code(), &region_codes);
      std::vector<const PhoneMetadata*> regions;
      bool complete = true;
      for (const std::string& code : region_codes) {
        auto it = by_region.find(code);
        if (it == by_region.end()) {
          complete = false;
          break;
        }
        regions.push_back(it->second);
      }
      if (!complete || regions.empty()) continue;
      codes_.emplace(m.country_code(), std::make_unique<CallingCode>(&m, std::move(regions)));
    }
  }

  const CallingCode* Find(int calling_code) const {
    auto it = codes_.find(calling_code);
    return it == codes_.end() ? nullptr : it->second.get();
  }

 private:
  PhoneMetadataCollection collection_;
  std::unordered_map<int, std::unique_ptr<CallingCode>> codes_;
};

const Table& TheTable() {
  static const Table table;
  return table;
}

}  // namespace

bool ReadCanonicalPhone(std::string_view number, i18n::phonenumbers::PhoneNumber* out,
                        PhoneNumberUtil::PhoneNumberType* type) {
  if (number.size() < 1 + kMinDigitsAfterPlus || number.front() != '+') return false;
  const std::string_view digits = number.substr(1);
  for (char c : digits) {
    if (c < '0' || c > '9') return false;
  }
  if (digits.front() == '0') return false;  // no calling code starts with 0: Parse's error
  // Calling codes are prefix-free, so the first known prefix is the only candidate.
  const CallingCode* code = nullptr;
  int calling_code = 0;
  size_t code_digits = 0;
  for (size_t n = 1; n <= 3 && n < digits.size() && code == nullptr; ++n) {
    calling_code = calling_code * 10 + (digits[n - 1] - '0');
    code = TheTable().Find(calling_code);
    code_digits = n;
  }
  if (code == nullptr || (code = code->Ready()) == nullptr) return false;
  const std::string_view nsn = digits.substr(code_digits);
  if (nsn.size() < kMinNsnDigits || nsn.size() > kMaxNsnDigits) return false;
  // A leading zero is kept by Parse as italian_leading_zero; leave that to it.
  if (nsn.front() == '0') return false;
  if (code->PrefixRuleMayApply(nsn)) return false;
  uint64_t national = 0;
  const auto [end, error] = std::from_chars(nsn.data(), nsn.data() + nsn.size(), national);
  if (error != std::errc() || end != nsn.data() + nsn.size()) return false;
  out->Clear();
  out->set_country_code(calling_code);
  out->set_national_number(national);
  *type = code->TypeOf(nsn);
  return true;
}

}  // namespace herald::internal
