# Finds libuv, libyaml and mbedTLS >= 3.6 and exposes them as ig:: targets.
find_package(PkgConfig REQUIRED)
find_package(Threads REQUIRED)

set(IG_DEPS_HINT "run scripts/install-deps.sh (it installs everything the build needs)")

pkg_check_modules(IG_UV REQUIRED IMPORTED_TARGET libuv)
pkg_check_modules(IG_YAML REQUIRED IMPORTED_TARGET yaml-0.1)
add_library(ig::uv ALIAS PkgConfig::IG_UV)
add_library(ig::yaml ALIAS PkgConfig::IG_YAML)

find_path(IG_MBEDTLS_INCLUDE_DIR mbedtls/build_info.h)
find_library(IG_MBEDTLS_LIB mbedtls)
find_library(IG_MBEDX509_LIB mbedx509)
find_library(IG_MBEDCRYPTO_LIB mbedcrypto)
if(NOT IG_MBEDTLS_INCLUDE_DIR OR NOT IG_MBEDTLS_LIB OR NOT IG_MBEDX509_LIB OR NOT IG_MBEDCRYPTO_LIB)
  message(FATAL_ERROR
    "mbedTLS 3.6 not found. Debian 12 ships only mbedTLS 2.28: ${IG_DEPS_HINT}.")
endif()
file(STRINGS "${IG_MBEDTLS_INCLUDE_DIR}/mbedtls/build_info.h" _ig_mbed_ver
     REGEX "^#define[ \t]+MBEDTLS_VERSION_STRING[ \t]+\"[0-9.]+\"")
string(REGEX REPLACE ".*\"([0-9.]+)\".*" "\\1" IG_MBEDTLS_VERSION "${_ig_mbed_ver}")
if(NOT IG_MBEDTLS_VERSION OR IG_MBEDTLS_VERSION VERSION_LESS 3.6)
  message(FATAL_ERROR
    "mbedTLS >= 3.6 is required (TLS 1.3), found '${IG_MBEDTLS_VERSION}' in "
    "${IG_MBEDTLS_INCLUDE_DIR}. Debian 12 ships 2.28: ${IG_DEPS_HINT}.")
endif()
message(STATUS "mbedTLS ${IG_MBEDTLS_VERSION}")
add_library(ig_mbedtls INTERFACE)
target_include_directories(ig_mbedtls INTERFACE ${IG_MBEDTLS_INCLUDE_DIR})
target_link_libraries(ig_mbedtls INTERFACE ${IG_MBEDTLS_LIB} ${IG_MBEDX509_LIB} ${IG_MBEDCRYPTO_LIB})
add_library(ig::mbedtls ALIAS ig_mbedtls)
