# Writes OUT, a .cc defining herald::api::OpenApiDocument() over the text of IN.
file(READ ${IN} text)
file(WRITE ${OUT} "#include \"api/openapi.h\"\nnamespace herald::api {\nnamespace {\nconstexpr char kDoc[] = R\"OPENAPI(${text})OPENAPI\";\n}\nstd::string_view OpenApiDocument() { return {kDoc, sizeof(kDoc) - 1}; }\n}  // namespace herald::api\n")
