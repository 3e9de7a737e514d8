# Used by run.sh as CMAKE_PROJECT_INCLUDE: adds tests/fuzz to the test folders
# (FILESYNC_TEST_DIRS in tests/CMakeLists.txt) when that list does not name it yet.
macro(_filesync_fuzz_watch var access value)
  if("${access}" STREQUAL "MODIFIED_ACCESS" AND NOT _filesync_fuzz_added)
    set(_filesync_fuzz_added TRUE)
    if(NOT "fuzz" IN_LIST FILESYNC_TEST_DIRS)
      list(APPEND FILESYNC_TEST_DIRS fuzz)
    endif()
  endif()
endmacro()
variable_watch(FILESYNC_TEST_DIRS _filesync_fuzz_watch)
