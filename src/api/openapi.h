// The OpenAPI 3.1 description of the routes as built (docs/openapi.json, embedded at build time).
#pragma once

#include <string_view>

namespace herald::api {
std::string_view OpenApiDocument();
}  // namespace herald::api
