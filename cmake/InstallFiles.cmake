# Run at install time (install(CODE) in cmake/Packaging.cmake): installs the
# files that name installed paths, written for this install's prefix, and
# the example configuration without overwriting one that is there.
# In: IG_SOURCE_DIR, IG_BINARY_DIR, IG_VERSION, IG_*_REL (GNUInstallDirs'
# relative or absolute dirs), IG_SYSTEMD_UNIT_DIR, CMAKE_INSTALL_PREFIX.
function(ig_abs out rel)
  if(IS_ABSOLUTE "${rel}")
    set(${out} "${rel}" PARENT_SCOPE)
  elseif(CMAKE_INSTALL_PREFIX STREQUAL "/")
    set(${out} "/${rel}" PARENT_SCOPE)
  else()
    set(${out} "${CMAKE_INSTALL_PREFIX}/${rel}" PARENT_SCOPE)
  endif()
endfunction()

# /etc and /lib/systemd/system for the system prefixes, as GNUInstallDirs
# and Debian 12 (dh_installsystemd) place them; PREFIX/etc otherwise.
if(CMAKE_INSTALL_PREFIX MATCHES "^/(usr/?)?$" AND NOT IS_ABSOLUTE "${IG_SYSCONFDIR_REL}")
  set(etc /etc)
else()
  ig_abs(etc "${IG_SYSCONFDIR_REL}")
endif()
if(IG_SYSTEMD_UNIT_DIR)
  set(unitdir "${IG_SYSTEMD_UNIT_DIR}")
elseif(CMAKE_INSTALL_PREFIX MATCHES "^/(usr/?)?$")
  set(unitdir /lib/systemd/system)
else()
  ig_abs(unitdir lib/systemd/system)
endif()
ig_abs(IG_SBINDIR "${IG_SBINDIR_REL}")
ig_abs(mandir "${IG_MANDIR_REL}")
ig_abs(IG_DOCDIR "${IG_DOCDIR_REL}")
set(IG_CONFDIR "${etc}/imapguard")
set(stage "${IG_BINARY_DIR}/packaging/install")
file(MAKE_DIRECTORY "${stage}")

# Replaces exactly @IG_SBINDIR@, @IG_CONFDIR@, @IG_DOCDIR@ and @IG_VERSION@
# (not configure_file: the man pages are full of user@domain examples).
function(ig_subst in out)
  file(READ "${in}" text)
  foreach(v IG_SBINDIR IG_CONFDIR IG_DOCDIR IG_VERSION)
    string(REPLACE "@${v}@" "${${v}}" text "${text}")
  endforeach()
  file(WRITE "${out}" "${text}")
endfunction()

# The unit.
ig_subst("${IG_SOURCE_DIR}/packaging/imapguard.service.in" "${stage}/imapguard.service")
file(INSTALL "${stage}/imapguard.service" DESTINATION "${unitdir}"
  PERMISSIONS OWNER_READ OWNER_WRITE GROUP_READ WORLD_READ)

# The man pages, with the installed paths, compressed as Debian wants them
# (gzip -9n: no name, no time stamp) when gzip is there.
find_program(IG_GZIP gzip)
foreach(page imapguard.8 imapguard.yaml.5)
  string(REGEX REPLACE ".*\\.([0-9])$" "\\1" sect "${page}")
  ig_subst("${IG_SOURCE_DIR}/docs/man/${page}" "${stage}/${page}")
  set(src "${stage}/${page}")
  if(IG_GZIP)
    execute_process(COMMAND "${IG_GZIP}" -9nf "${stage}/${page}" RESULT_VARIABLE rc)
    if(NOT rc EQUAL 0)
      message(FATAL_ERROR "gzip ${stage}/${page} failed")
    endif()
    set(src "${stage}/${page}.gz")
  endif()
  file(INSTALL "${src}" DESTINATION "${mandir}/man${sect}"
    PERMISSIONS OWNER_READ OWNER_WRITE GROUP_READ WORLD_READ)
endforeach()

# logrotate, for log.file.
file(INSTALL "${IG_SOURCE_DIR}/packaging/imapguard.logrotate" DESTINATION "${etc}/logrotate.d"
  RENAME imapguard PERMISSIONS OWNER_READ OWNER_WRITE GROUP_READ WORLD_READ)

# The example configuration: never over an existing one (the .deb's is a
# conffile, which dpkg guards itself).
if(EXISTS "$ENV{DESTDIR}${IG_CONFDIR}/imapguard.yaml")
  message(STATUS "Keeping: $ENV{DESTDIR}${IG_CONFDIR}/imapguard.yaml (the example is in "
    "${IG_DOCDIR}/examples)")
else()
  file(INSTALL "${IG_SOURCE_DIR}/examples/imapguard.yaml" DESTINATION "${IG_CONFDIR}"
    PERMISSIONS OWNER_READ OWNER_WRITE GROUP_READ WORLD_READ)
endif()
