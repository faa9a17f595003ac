# Included by mbedTLS's own CMake build (CMAKE_PROJECT_INCLUDE, set by
# cmake/MbedTLS.cmake) right after its project() call: compiles imapguard's
# PSA driver over OpenSSL (crypto/driver/psa_ossl.c) into libmbedcrypto, whose
# generated driver wrappers call it, and links libcrypto into everything the
# build links (mbedTLS's test suites).
get_property(_ig_done GLOBAL PROPERTY IG_PSA_DRIVER_ATTACHED)
if(_ig_done OR NOT IG_PSA_DRIVER_DIR)
  return()
endif()
set_property(GLOBAL PROPERTY IG_PSA_DRIVER_ATTACHED ON)

find_package(OpenSSL 3.0 REQUIRED COMPONENTS Crypto)
include_directories(BEFORE "${IG_PSA_DRIVER_DIR}" ${OPENSSL_INCLUDE_DIR})
set(CMAKE_C_STANDARD_LIBRARIES "${CMAKE_C_STANDARD_LIBRARIES} ${OPENSSL_CRYPTO_LIBRARY}")

function(ig_psa_driver_attach)
  target_sources(mbedcrypto PRIVATE "${IG_PSA_DRIVER_DIR}/psa_ossl.c")
endfunction()
cmake_language(DEFER DIRECTORY "${CMAKE_SOURCE_DIR}" CALL ig_psa_driver_attach)
