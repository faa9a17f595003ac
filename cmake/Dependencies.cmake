# Finds libuv and libyaml, builds or finds mbedTLS 3.6 (cmake/MbedTLS.cmake),
# and exposes them as ig:: targets.
find_package(PkgConfig REQUIRED)
find_package(Threads REQUIRED)

set(IG_DEPS_HINT "run scripts/install-deps.sh (it installs everything the build needs)")

pkg_check_modules(IG_UV REQUIRED IMPORTED_TARGET libuv)
pkg_check_modules(IG_YAML REQUIRED IMPORTED_TARGET yaml-0.1)
add_library(ig::uv ALIAS PkgConfig::IG_UV)
add_library(ig::yaml ALIAS PkgConfig::IG_YAML)

include(${CMAKE_CURRENT_LIST_DIR}/MbedTLS.cmake)
