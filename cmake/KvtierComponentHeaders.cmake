# Private include paths per component.
#
# kvtier's headers are included by their path from the source root ("tiers/host/host_arena.h").
# Putting the source root on a target's include path would let it include any component's private
# headers, whatever it links. Instead each component gets an include root of its own in the build
# tree that holds links to its own headers only, and exposes that root to what links it: a target
# can include a component's headers only if it links the component (directly or through one that
# does), so the include graph cannot drift from the link graph.
#
#   kvtier_component_headers(<target> <PUBLIC|PRIVATE|INTERFACE> [BASE <dir>] <path>...)
#
# Each path (a directory or a file, relative to BASE, itself relative to the source root; default:
# the source root) appears under the target's root at that relative path, as it is included.
function(kvtier_component_headers target scope)
  cmake_parse_arguments(PARSE_ARGV 2 arg "" "BASE" "")
  set(base ${PROJECT_SOURCE_DIR})
  if(arg_BASE)
    set(base ${PROJECT_SOURCE_DIR}/${arg_BASE})
  endif()
  set(root ${CMAKE_BINARY_DIR}/include-roots/${target})
  foreach(path ${arg_UNPARSED_ARGUMENTS})
    if(NOT EXISTS ${base}/${path})
      message(FATAL_ERROR "kvtier_component_headers(${target}): no ${base}/${path}")
    endif()
    get_filename_component(parent ${root}/${path} DIRECTORY)
    file(MAKE_DIRECTORY ${parent})
    if(NOT IS_SYMLINK ${root}/${path})
      file(CREATE_LINK ${base}/${path} ${root}/${path} SYMBOLIC)
    endif()
  endforeach()
  target_include_directories(${target} ${scope} ${root})
endfunction()
