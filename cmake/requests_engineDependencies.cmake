# Finds what requests_engine.hpp needs. Included both by the project's CMakeLists.txt and by the
# installed requests_engineConfig.cmake, so a find_package(requests_engine) consumer gets exactly
# the discovery the project's own build uses.
#
# cpp-httplib comes in two shapes: a CMake package with the target httplib::httplib (vcpkg,
# conan, upstream install), or Debian's compiled libcpp-httplib, found through pkg-config, whose
# flags (-DCPPHTTPLIB_OPENSSL_SUPPORT ... -lcpp-httplib) every consumer must get. Whichever is
# found sits behind the imported target requests_engine::cpp_httplib, so the exported
# requests_engine target names one stable target and never the discovery that was used.
#
# In the config file (_requests_engine_in_config set) a missing dependency makes
# find_package(requests_engine) fail softly through find_dependency(); in the project's own
# build it is a configure error.

if(TARGET requests_engine::cpp_httplib)
  return() # already found in this directory or a parent: imported targets are visible here
endif()

macro(_requests_engine_find_package _re_name)
  if(_requests_engine_in_config)
    find_dependency(${_re_name} ${ARGN})
  else()
    find_package(${_re_name} ${ARGN} REQUIRED)
  endif()
endmacro()

set(THREADS_PREFER_PTHREAD_FLAG ON)
_requests_engine_find_package(Threads)
_requests_engine_find_package(OpenSSL)
_requests_engine_find_package(nlohmann_json CONFIG)

find_package(httplib CONFIG QUIET)
if(TARGET httplib::httplib)
  set(_re_httplib_target httplib::httplib)
else()
  _requests_engine_find_package(PkgConfig)
  pkg_check_modules(REQUESTS_ENGINE_CPP_HTTPLIB QUIET IMPORTED_TARGET cpp-httplib)
  if(NOT REQUESTS_ENGINE_CPP_HTTPLIB_FOUND)
    string(CONCAT _re_msg
      "cpp-httplib not found: neither a CMake package (httplib::httplib, as vcpkg or conan "
      "install it) nor pkg-config's cpp-httplib (Debian: libcpp-httplib-dev). "
      "Set CMAKE_PREFIX_PATH or PKG_CONFIG_PATH.")
    if(_requests_engine_in_config)
      set(requests_engine_NOT_FOUND_MESSAGE "${_re_msg}")
      set(requests_engine_FOUND FALSE)
      return()
    endif()
    message(FATAL_ERROR "${_re_msg}")
  endif()
  set(_re_httplib_target PkgConfig::REQUESTS_ENGINE_CPP_HTTPLIB)
endif()

add_library(requests_engine::cpp_httplib INTERFACE IMPORTED)
set_target_properties(requests_engine::cpp_httplib PROPERTIES
  INTERFACE_LINK_LIBRARIES "${_re_httplib_target}")
unset(_re_httplib_target)
