# Turns a text file into a C++ source defining `const std::string_view <NAME>` in <NAMESPACE>,
# as a raw string literal (run at build time by a custom command):
#   cmake -DINPUT=page.html -DOUTPUT=page_html.cc -DNAME=kPage -DNAMESPACE=ns -DHEADER=ns/page.h
#         -P cmake/EmbedFile.cmake
# HEADER is the header declaring it (included, so a mismatch fails to compile). The output is
# rewritten only when it changes.
foreach(arg INPUT OUTPUT NAME NAMESPACE HEADER)
  if(NOT DEFINED ${arg})
    message(FATAL_ERROR "EmbedFile.cmake: -D${arg}=... is required")
  endif()
endforeach()
set(delimiter "filesync_embed")
file(READ "${INPUT}" content)
string(FIND "${content}" ")${delimiter}\"" clash)
if(NOT clash EQUAL -1)
  message(FATAL_ERROR "${INPUT} contains )${delimiter}\", which would end the raw string")
endif()
file(WRITE "${OUTPUT}.tmp"
  "// Generated from ${INPUT} by cmake/EmbedFile.cmake: edit that file, not this one.\n"
  "#include \"${HEADER}\"\n\n"
  "namespace ${NAMESPACE} {\n"
  "const std::string_view ${NAME} = R\"${delimiter}(${content})${delimiter}\";\n"
  "}  // namespace ${NAMESPACE}\n")
file(COPY_FILE "${OUTPUT}.tmp" "${OUTPUT}" ONLY_IF_DIFFERENT)
file(REMOVE "${OUTPUT}.tmp")
