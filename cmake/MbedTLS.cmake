# mbedTLS 3.6 as the target ig::mbedtls.
#
# By default CMake builds mbedTLS itself, from the source that
# scripts/install-deps.sh fetched into .deps/mbedtls (Debian 13's source
# package), with imapguard's configuration crypto/mbedtls_config.h: without
# sanitizers or -Werror, optimised (-O2 -g) whatever the build type, and once
# for every build tree of the checkout (plain, ASan, fuzz), in
# IG_MBEDTLS_CACHE_DIR under a key made of the mbedTLS version, the compiler,
# the configuration file's path and the contents of our patches to mbedTLS
# (crypto/patches/, applied to the build's copy of the source). The build runs
# at configure time under a lock; every later configure runs it again, which
# rebuilds only what changed (the configuration header and mbedTLS's own
# sources are make dependencies), and editing the configuration header, the
# driver or a patch reconfigures.
#
# The build has imapguard's PSA driver over OpenSSL's libcrypto
# (crypto/driver/): the source is copied into the build's folder, where
# crypto/driver/driver_wrappers.py regenerates PSA's driver wrappers with the
# driver's description (crypto/driver/psa_ossl.json), and
# cmake/MbedTLSDriver.cmake compiles the driver into libmbedcrypto.
#
# IG_SYSTEM_MBEDTLS=ON links the system's mbedTLS >= 3.6 instead (Debian 13's
# binary packages, which install-deps.sh also installs).
option(IG_SYSTEM_MBEDTLS "Link the system's mbedTLS >= 3.6 instead of building our own" OFF)

if(IG_SYSTEM_MBEDTLS)
  find_path(IG_MBEDTLS_INCLUDE_DIR mbedtls/build_info.h)
  find_library(IG_MBEDTLS_LIB mbedtls)
  find_library(IG_MBEDX509_LIB mbedx509)
  find_library(IG_MBEDCRYPTO_LIB mbedcrypto)
  if(NOT IG_MBEDTLS_INCLUDE_DIR OR NOT IG_MBEDTLS_LIB OR NOT IG_MBEDX509_LIB OR NOT IG_MBEDCRYPTO_LIB)
    message(FATAL_ERROR
      "IG_SYSTEM_MBEDTLS=ON: mbedTLS 3.6 not found. Debian 12 ships only mbedTLS 2.28: "
      "${IG_DEPS_HINT}.")
  endif()
  file(STRINGS "${IG_MBEDTLS_INCLUDE_DIR}/mbedtls/build_info.h" _ig_mbed_ver
       REGEX "^#define[ \t]+MBEDTLS_VERSION_STRING[ \t]+\"[0-9.]+\"")
  string(REGEX REPLACE ".*\"([0-9.]+)\".*" "\\1" IG_MBEDTLS_VERSION "${_ig_mbed_ver}")
  if(NOT IG_MBEDTLS_VERSION OR IG_MBEDTLS_VERSION VERSION_LESS 3.6)
    message(FATAL_ERROR
      "mbedTLS >= 3.6 is required (TLS 1.3), found '${IG_MBEDTLS_VERSION}' in "
      "${IG_MBEDTLS_INCLUDE_DIR}. Debian 12 ships 2.28: ${IG_DEPS_HINT}.")
  endif()
  message(STATUS "mbedTLS ${IG_MBEDTLS_VERSION} (system, IG_SYSTEM_MBEDTLS=ON)")
  add_library(ig_mbedtls INTERFACE)
  target_include_directories(ig_mbedtls INTERFACE ${IG_MBEDTLS_INCLUDE_DIR})
  target_link_libraries(ig_mbedtls INTERFACE ${IG_MBEDTLS_LIB} ${IG_MBEDX509_LIB}
    ${IG_MBEDCRYPTO_LIB})
  add_library(ig::mbedtls ALIAS ig_mbedtls)
  return()
endif()

set(IG_MBEDTLS_SOURCE_DIR "${CMAKE_SOURCE_DIR}/.deps/mbedtls" CACHE PATH
  "mbedTLS 3.6 source tree (scripts/install-deps.sh fetches it)")
set(IG_MBEDTLS_CACHE_DIR "${CMAKE_SOURCE_DIR}/.deps/build" CACHE PATH
  "Where mbedTLS is built, shared by every build tree of this checkout")
set(IG_MBEDTLS_CONFIG "${CMAKE_SOURCE_DIR}/crypto/mbedtls_config.h" CACHE FILEPATH
  "mbedTLS configuration header (MBEDTLS_CONFIG_FILE)")
# One compiler for mbedTLS whatever the tree's (the fuzz tree's clang links
# it as it linked Debian's gcc-built library): one build serves every tree.
find_program(IG_MBEDTLS_C_COMPILER NAMES cc gcc clang
  DOC "C compiler for mbedTLS (the same for every build tree)")
if(NOT IG_MBEDTLS_C_COMPILER)
  set(IG_MBEDTLS_C_COMPILER "${CMAKE_C_COMPILER}" CACHE FILEPATH "" FORCE)
endif()

file(REAL_PATH "${IG_MBEDTLS_SOURCE_DIR}" _ig_src) # .deps/mbedtls is a link
if(NOT EXISTS "${_ig_src}/include/mbedtls/build_info.h" OR NOT EXISTS "${_ig_src}/.ig-source")
  message(FATAL_ERROR
    "mbedTLS 3.6 source not found in ${_ig_src}: run scripts/install-deps.sh (it fetches "
    "Debian 13's mbedtls source package there), or configure with -DIG_SYSTEM_MBEDTLS=ON "
    "to link the system's mbedTLS.")
endif()
file(STRINGS "${_ig_src}/include/mbedtls/build_info.h" _ig_mbed_ver
     REGEX "^#define[ \t]+MBEDTLS_VERSION_STRING[ \t]+\"[0-9.]+\"")
string(REGEX REPLACE ".*\"([0-9.]+)\".*" "\\1" IG_MBEDTLS_VERSION "${_ig_mbed_ver}")
if(NOT IG_MBEDTLS_VERSION OR IG_MBEDTLS_VERSION VERSION_LESS 3.6 OR
   NOT IG_MBEDTLS_VERSION VERSION_LESS 3.7)
  message(FATAL_ERROR
    "mbedTLS 3.6.x is required, found '${IG_MBEDTLS_VERSION}' in ${_ig_src}: "
    "${IG_DEPS_HINT}.")
endif()
if(NOT EXISTS "${IG_MBEDTLS_CONFIG}")
  message(FATAL_ERROR "IG_MBEDTLS_CONFIG: ${IG_MBEDTLS_CONFIG} does not exist")
endif()
find_package(OpenSSL 3.0 REQUIRED COMPONENTS Crypto)
find_package(Python3 REQUIRED COMPONENTS Interpreter)
execute_process(COMMAND ${Python3_EXECUTABLE} -c "import jinja2, jsonschema"
  RESULT_VARIABLE _ig_py ERROR_QUIET)
if(NOT _ig_py EQUAL 0)
  message(FATAL_ERROR "mbedTLS's driver wrapper generator needs Python's jinja2 and "
    "jsonschema: ${IG_DEPS_HINT}.")
endif()
set(IG_PSA_DRIVER_DIR "${CMAKE_SOURCE_DIR}/crypto/driver")
set(_ig_driver_files "${IG_PSA_DRIVER_DIR}/psa_ossl.c" "${IG_PSA_DRIVER_DIR}/psa_ossl.h"
  "${IG_PSA_DRIVER_DIR}/psa_ossl.json" "${IG_PSA_DRIVER_DIR}/driver_wrappers.py"
  "${CMAKE_CURRENT_LIST_DIR}/MbedTLSDriver.cmake")

# Our patches to mbedTLS's source (crypto/patches/*.patch, applied in name
# order to the build's copy of the source, never to .deps/mbedtls): their
# contents are part of the key below, so a new, changed or removed patch
# builds in a fresh folder from a fresh copy (the old folder stays until
# .deps/build is cleaned).
set(IG_MBEDTLS_PATCH_DIR "${CMAKE_SOURCE_DIR}/crypto/patches")
file(GLOB _ig_patches CONFIGURE_DEPENDS "${IG_MBEDTLS_PATCH_DIR}/*.patch")
list(SORT _ig_patches)
set(_ig_patch_id "")
foreach(p IN LISTS _ig_patches)
  file(SHA256 "${p}" h)
  get_filename_component(n "${p}" NAME)
  string(APPEND _ig_patch_id "${n} ${h}\n")
endforeach()
if(_ig_patches)
  find_program(IG_PATCH_PROGRAM patch)
  if(NOT IG_PATCH_PROGRAM)
    message(FATAL_ERROR "patch(1) is needed to apply crypto/patches/ to mbedTLS: "
      "${IG_DEPS_HINT}.")
  endif()
endif()

# The key: what the build cannot detect by itself (the configuration header
# can: it is a make dependency of every mbedTLS object). Bump the recipe when
# the options below change.
set(_ig_recipe 3)
file(READ "${_ig_src}/.ig-source" _ig_source_id)
execute_process(COMMAND ${IG_MBEDTLS_C_COMPILER} --version
  OUTPUT_VARIABLE _ig_cc_version ERROR_QUIET)
file(REAL_PATH "${IG_MBEDTLS_C_COMPILER}" _ig_cc_real)
string(SHA256 _ig_key "${_ig_recipe}\n${_ig_source_id}\n${_ig_cc_real}\n${_ig_cc_version}\n${IG_MBEDTLS_CONFIG}\n${_ig_patch_id}")
string(SUBSTRING "${_ig_key}" 0 12 _ig_key)
set(IG_MBEDTLS_DIR "${IG_MBEDTLS_CACHE_DIR}/mbedtls-${IG_MBEDTLS_VERSION}-${_ig_key}")
set(_ig_copy "${IG_MBEDTLS_DIR}/src")
set(_ig_bld "${IG_MBEDTLS_DIR}/build")
set(_ig_inst "${IG_MBEDTLS_DIR}/install")
set(_ig_log "${IG_MBEDTLS_DIR}/build.log")
cmake_host_system_information(RESULT _ig_ncpu QUERY NUMBER_OF_LOGICAL_CORES)

file(MAKE_DIRECTORY "${IG_MBEDTLS_DIR}")
# Two trees configured at once wait for each other here.
file(LOCK "${IG_MBEDTLS_DIR}.lock" GUARD FILE TIMEOUT 3600 RESULT_VARIABLE _ig_lock)
if(_ig_lock)
  message(FATAL_ERROR "cannot lock ${IG_MBEDTLS_DIR}.lock: ${_ig_lock}")
endif()

function(ig_mbedtls_step what)
  execute_process(COMMAND ${ARGN} RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE out)
  file(APPEND "${_ig_log}" "== ${what}\n${out}\n")
  if(NOT rc EQUAL 0)
    string(LENGTH "${out}" n)
    if(n GREATER 6000)
      math(EXPR from "${n} - 6000")
      string(SUBSTRING "${out}" ${from} -1 out)
    endif()
    message(FATAL_ERROR "mbedTLS ${what} failed (full log: ${_ig_log}):\n${out}")
  endif()
endfunction()

# The copy is complete, patches applied, when .ig-copied exists (written
# last): an interrupted copy or a failed patch starts again from scratch.
if(NOT EXISTS "${_ig_copy}/.ig-copied")
  message(STATUS "mbedTLS ${IG_MBEDTLS_VERSION}: copying the source into ${IG_MBEDTLS_DIR}")
  file(REMOVE_RECURSE "${_ig_copy}" "${_ig_bld}")
  file(COPY "${_ig_src}/" DESTINATION "${_ig_copy}" PATTERN debian EXCLUDE)
  foreach(p IN LISTS _ig_patches)
    message(STATUS "mbedTLS ${IG_MBEDTLS_VERSION}: applying ${p}")
    ig_mbedtls_step("patch ${p}" ${IG_PATCH_PROGRAM} -d "${_ig_copy}" -p1 --forward
      --batch --no-backup-if-mismatch -i "${p}")
  endforeach()
  file(WRITE "${_ig_copy}/.ig-copied" "${_ig_source_id}${_ig_patch_id}")
endif()
# PSA's driver wrappers with our driver (only changed files are replaced, so
# make rebuilds only when they change).
file(WRITE "${_ig_log}" "")
ig_mbedtls_step("driver wrapper generation" ${Python3_EXECUTABLE}
  "${IG_PSA_DRIVER_DIR}/driver_wrappers.py" "${_ig_src}" "${IG_PSA_DRIVER_DIR}/psa_ossl.json"
  "${IG_MBEDTLS_DIR}/wrappers")
foreach(f psa_crypto_driver_wrappers.h psa_crypto_driver_wrappers_no_static.c)
  file(COPY_FILE "${IG_MBEDTLS_DIR}/wrappers/${f}" "${_ig_copy}/library/${f}" ONLY_IF_DIFFERENT)
endforeach()
if(NOT EXISTS "${_ig_bld}/CMakeCache.txt")
  message(STATUS "mbedTLS ${IG_MBEDTLS_VERSION}: configuring in ${IG_MBEDTLS_DIR}")
  ig_mbedtls_step(configure ${CMAKE_COMMAND} -S "${_ig_copy}" -B "${_ig_bld}"
    -DCMAKE_PROJECT_INCLUDE=${CMAKE_CURRENT_LIST_DIR}/MbedTLSDriver.cmake
    -DIG_PSA_DRIVER_DIR=${IG_PSA_DRIVER_DIR}
    -G "Unix Makefiles"
    -DCMAKE_C_COMPILER=${IG_MBEDTLS_C_COMPILER}
    -DCMAKE_BUILD_TYPE=Release
    -DCMAKE_C_FLAGS=-g
    -DCMAKE_POSITION_INDEPENDENT_CODE=ON
    -DCMAKE_INSTALL_PREFIX=${_ig_inst}
    -DCMAKE_INSTALL_LIBDIR=lib
    -DMBEDTLS_CONFIG_FILE=${IG_MBEDTLS_CONFIG}
    -DMBEDTLS_FATAL_WARNINGS=OFF
    -DENABLE_PROGRAMS=OFF
    -DENABLE_TESTING=ON
    -DGEN_FILES=OFF
    -DUSE_STATIC_MBEDTLS_LIBRARY=ON
    -DUSE_SHARED_MBEDTLS_LIBRARY=OFF
    -DLINK_WITH_PTHREAD=ON)
endif()
message(STATUS "mbedTLS ${IG_MBEDTLS_VERSION}: building the libraries with "
  "${IG_MBEDTLS_CONFIG} (shared by every build tree: ${IG_MBEDTLS_DIR})")
ig_mbedtls_step(build ${CMAKE_COMMAND} --build "${_ig_bld}" -j${_ig_ncpu}
  --target mbedcrypto mbedx509 mbedtls everest p256m)
ig_mbedtls_step(install ${CMAKE_COMMAND} --install "${_ig_bld}")
file(LOCK "${IG_MBEDTLS_DIR}.lock" RELEASE)

# A changed configuration header, driver or patch reconfigures (and so
# rebuilds what changed in mbedTLS; a patch added or removed too: the glob
# above is checked at every build).
set_property(DIRECTORY APPEND PROPERTY CMAKE_CONFIGURE_DEPENDS "${IG_MBEDTLS_CONFIG}"
  ${_ig_driver_files} ${_ig_patches})

add_library(ig_mbedtls INTERFACE)
# SYSTEM, as /usr/include is for the system's mbedTLS: our warning flags are
# for our code.
target_include_directories(ig_mbedtls SYSTEM INTERFACE "${_ig_inst}/include")
target_compile_definitions(ig_mbedtls INTERFACE MBEDTLS_CONFIG_FILE="${IG_MBEDTLS_CONFIG}")
target_link_libraries(ig_mbedtls INTERFACE
  "${_ig_inst}/lib/libmbedtls.a" "${_ig_inst}/lib/libmbedx509.a"
  "${_ig_inst}/lib/libmbedcrypto.a" "${_ig_inst}/lib/libeverest.a"
  "${_ig_inst}/lib/libp256m.a" OpenSSL::Crypto Threads::Threads)
add_library(ig::mbedtls ALIAS ig_mbedtls)
message(STATUS "mbedTLS ${IG_MBEDTLS_VERSION} (our build, ${IG_MBEDTLS_CONFIG})")

# mbedTLS's own test suites for what imapguard uses, run by ctest with the
# label mbedtls (tests/CMakeLists.txt) against this very build: a few seconds
# to run, about a minute to build once per checkout.
set(IG_MBEDTLS_TEST_SUITES
  test_suite_ecdsa test_suite_ecdh test_suite_ecp
  test_suite_psa_crypto test_suite_psa_crypto_ecp test_suite_psa_crypto_util
  test_suite_psa_crypto_entropy # the RNG after fork() (crypto/patches/0006)
  test_suite_psa_crypto_generate_key.generated test_suite_psa_crypto_op_fail.generated
  test_suite_psa_crypto_not_supported.generated
  test_suite_gcm.aes256_en test_suite_gcm.aes256_de test_suite_gcm.aes128_en
  test_suite_gcm.aes128_de test_suite_chachapoly
  test_suite_pk test_suite_pkparse test_suite_x509parse test_suite_ssl
  test_suite_shax test_suite_md)
