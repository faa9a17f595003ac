# Finds libuv, libyaml, SQLite and libargon2, builds or finds mbedTLS 3.6 (cmake/MbedTLS.cmake),
# and exposes them as ig:: targets.
find_package(PkgConfig REQUIRED)
find_package(Threads REQUIRED)

set(IG_DEPS_HINT "run scripts/install-deps.sh (it installs everything the build needs)")

pkg_check_modules(IG_UV REQUIRED IMPORTED_TARGET libuv)
pkg_check_modules(IG_YAML REQUIRED IMPORTED_TARGET yaml-0.1)
add_library(ig::uv ALIAS PkgConfig::IG_UV)
add_library(ig::yaml ALIAS PkgConfig::IG_YAML)

# App passwords (apppass/): the store is SQLite, the hash Argon2id; both
# from Debian (libsqlite3-dev, libargon2-dev).
pkg_check_modules(IG_SQLITE IMPORTED_TARGET sqlite3>=3.37)
if(NOT IG_SQLITE_FOUND)
  message(FATAL_ERROR "SQLite 3.37 or later (libsqlite3-dev) not found: ${IG_DEPS_HINT}")
endif()
pkg_check_modules(IG_ARGON2 IMPORTED_TARGET libargon2)
if(NOT IG_ARGON2_FOUND)
  message(FATAL_ERROR "libargon2 (libargon2-dev) not found: ${IG_DEPS_HINT}")
endif()
add_library(ig::sqlite3 ALIAS PkgConfig::IG_SQLITE)
add_library(ig::argon2 ALIAS PkgConfig::IG_ARGON2)

include(${CMAKE_CURRENT_LIST_DIR}/MbedTLS.cmake)
