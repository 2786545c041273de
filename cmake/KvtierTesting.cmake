# kvtier_add_test(NAME SOURCES a.cc b.cc LIBS lib1 lib2 [LABELS l1 l2])
# One line declares a GoogleTest binary; ctest discovers each TEST() inside it.
include(GoogleTest)

function(kvtier_add_test name)
  cmake_parse_arguments(ARG "" "" "SOURCES;LIBS;LABELS" ${ARGN})
  add_executable(${name} ${ARG_SOURCES})
  target_link_libraries(${name} PRIVATE ${ARG_LIBS} kvtier_options GTest::gtest GTest::gmock GTest::gtest_main)
  set_target_properties(${name} PROPERTIES RUNTIME_OUTPUT_DIRECTORY ${CMAKE_BINARY_DIR}/tests)
  if(KVTIER_SANITIZE STREQUAL "thread" AND "multiprocess" IN_LIST ARG_LABELS)
    # TSan cannot follow fork(): the tsan test preset skips these, so they are not built by default.
    set_target_properties(${name} PROPERTIES EXCLUDE_FROM_ALL TRUE)
    return()
  endif()
  gtest_discover_tests(${name} DISCOVERY_TIMEOUT 60 TEST_LIST ${name}_TESTS PROPERTIES TIMEOUT 120)
  # Labels go on in a file ctest reads after the discovered tests: passed through PROPERTIES, a
  # list of labels loses every label but the first (and the TIMEOUT after it).
  set(labels_file "${CMAKE_CURRENT_BINARY_DIR}/${name}_labels.cmake")
  file(WRITE "${labels_file}"
    "if(${name}_TESTS)\n  set_tests_properties(\${${name}_TESTS} PROPERTIES LABELS \"${ARG_LABELS}\")\nendif()\n")
  set_property(DIRECTORY APPEND PROPERTY TEST_INCLUDE_FILES "${labels_file}")
endfunction()
