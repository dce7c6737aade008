// NoThrow: the guard every store backend puts around a Store method's body.
#pragma once

#include <exception>
#include <string>

#include "common/result.h"

namespace herald {

// Runs `body`, turning any exception into kInternal: no exception crosses the Store interface.
template <typename F>
auto NoThrow(F&& body) noexcept -> decltype(body()) {
  try {
    return body();
  } catch (const std::exception& e) {
    return MakeError(ErrorKind::kInternal, "internal", std::string("Store failed: ") + e.what());
  } catch (...) {
    return MakeError(ErrorKind::kInternal, "internal", "Store failed.");
  }
}

}  // namespace herald
