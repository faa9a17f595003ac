# cmake -DIG_MBEDTLS_DIR=... -DIG_TARGETS=a;b -DIG_JOBS=n -P cmake/MbedTLSBuild.cmake
# Builds targets of the shared mbedTLS build tree (cmake/MbedTLS.cmake) under
# the same lock as configure-time builds, for build-time steps (the test
# suites).
file(LOCK "${IG_MBEDTLS_DIR}.lock" TIMEOUT 3600)
# (A fresh make: the outer make's jobserver does not reach through cmake.)
execute_process(COMMAND ${CMAKE_COMMAND} -E env --unset=MAKEFLAGS --unset=MFLAGS
  ${CMAKE_COMMAND} --build "${IG_MBEDTLS_DIR}/build" -j${IG_JOBS}
  --target ${IG_TARGETS} RESULT_VARIABLE rc)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "building ${IG_TARGETS} in ${IG_MBEDTLS_DIR}/build failed")
endif()
