# Shared target settings: warnings, sanitizers, and helpers for libraries and tests.

add_library(filesync_options INTERFACE)
target_compile_options(filesync_options INTERFACE
  -Wall -Wextra -Wpedantic -Wshadow -Wnon-virtual-dtor -Wold-style-cast -Wcast-align
  -Wunused -Woverloaded-virtual -Wconversion -Wsign-conversion
  -Wdouble-promotion -Wformat=2 -Wimplicit-fallthrough
  # No -Wnull-dereference: at -O2 GCC 12 reports it from inside libstdc++ (std::string in CLI11,
  # istream iterators), which -Werror would turn into a build failure.
  # C++20 designated initialisers leave the other fields at their defaults on purpose.
  -Wno-missing-field-initializers)
if(FILESYNC_WERROR)
  target_compile_options(filesync_options INTERFACE -Werror)
endif()
if(CMAKE_CXX_COMPILER_ID MATCHES "Clang")
  target_compile_options(filesync_options INTERFACE -Wthread-safety)
endif()
target_include_directories(filesync_options INTERFACE ${PROJECT_SOURCE_DIR}/src)
if(FILESYNC_SANITIZE)
  target_compile_options(filesync_options INTERFACE -fsanitize=${FILESYNC_SANITIZE} -fno-omit-frame-pointer -fno-sanitize-recover=all)
  target_link_options(filesync_options INTERFACE -fsanitize=${FILESYNC_SANITIZE})
endif()

# filesync_library(NAME SOURCES a.cc b.cc DEPS x y)
function(filesync_library name)
  cmake_parse_arguments(ARG "" "" "SOURCES;DEPS" ${ARGN})
  add_library(${name} STATIC ${ARG_SOURCES})
  target_link_libraries(${name} PUBLIC filesync_options ${ARG_DEPS})
endfunction()

# filesync_test(NAME SOURCES a_test.cc DEPS lib... [LABELS unit|integration|slow])
# One GoogleTest binary per call; every TEST becomes its own ctest case.
function(filesync_test name)
  cmake_parse_arguments(ARG "" "" "SOURCES;DEPS;LABELS" ${ARGN})
  add_executable(${name} ${ARG_SOURCES})
  target_link_libraries(${name} PRIVATE filesync_options ${ARG_DEPS} GTest::gtest GTest::gmock GTest::gtest_main)
  if(NOT ARG_LABELS)
    set(ARG_LABELS unit)
  endif()
  # One label per target: CMake 3.25's gtest_discover_tests flattens a list-valued LABELS.
  list(GET ARG_LABELS 0 label)
  gtest_discover_tests(${name}
    TEST_PREFIX "${name}."
    DISCOVERY_TIMEOUT 60
    PROPERTIES LABELS "${label}"
    EXTRA_ARGS --gtest_color=no)
endfunction()
