# Installation (cmake --install) and the Debian package (cpack -G DEB).
#
# GNU layout under CMAKE_INSTALL_PREFIX (default /usr/local):
#   sbin/imapguard                        the daemon (an admin command, as nginx's
#                                         and dovecot's)
#   share/man/man8/imapguard.8.gz         imapguard(8)
#   share/man/man5/imapguard.yaml.5.gz    imapguard.yaml(5)
#   share/doc/imapguard/                  README, docs/, examples/
#   etc/imapguard/imapguard.yaml          the example configuration, only when
#                                         none exists yet (/etc with prefix /usr)
#   lib/systemd/system/imapguard.service  the unit (/lib/systemd/system with
#                                         prefix /usr; IG_SYSTEMD_UNIT_DIR)
#   etc/logrotate.d/imapguard             for log.file
# The unit and the man pages name the installed paths: they are written at
# install time (cmake/InstallFiles.cmake), for the prefix the install is
# made with, which for the .deb is /usr whatever the build tree's is.
include(GNUInstallDirs)

set(IG_SYSTEMD_UNIT_DIR "" CACHE PATH
  "Where the systemd unit goes (empty: /lib/systemd/system with prefix /usr, else PREFIX/lib/systemd/system)")
set(IG_PACKAGE_MAINTAINER "imapguard maintainers <imapguard@example.org>" CACHE STRING
  "Maintainer field of the Debian package")

install(TARGETS imapguard RUNTIME DESTINATION ${CMAKE_INSTALL_SBINDIR})
install(FILES README.md DESTINATION ${CMAKE_INSTALL_DOCDIR})
install(FILES docs/ARCHITECTURE.md docs/policy.md docs/ratelimit.md docs/APP_PASSWORDS.md
  DESTINATION ${CMAKE_INSTALL_DOCDIR}/docs)
install(FILES examples/imapguard.yaml examples/dev.yaml
  DESTINATION ${CMAKE_INSTALL_DOCDIR}/examples)
install(CODE "
  set(IG_SOURCE_DIR \"${CMAKE_SOURCE_DIR}\")
  set(IG_BINARY_DIR \"${CMAKE_BINARY_DIR}\")
  set(IG_VERSION \"${PROJECT_VERSION}\")
  set(IG_SBINDIR_REL \"${CMAKE_INSTALL_SBINDIR}\")
  set(IG_MANDIR_REL \"${CMAKE_INSTALL_MANDIR}\")
  set(IG_DOCDIR_REL \"${CMAKE_INSTALL_DOCDIR}\")
  set(IG_SYSCONFDIR_REL \"${CMAKE_INSTALL_SYSCONFDIR}\")
  set(IG_SYSTEMD_UNIT_DIR \"${IG_SYSTEMD_UNIT_DIR}\")
  include(\"${CMAKE_SOURCE_DIR}/cmake/InstallFiles.cmake\")
")

# The .deb: cpack -G DEB in the build tree (any build type; a Release or
# RelWithDebInfo tree for a real package). Depends comes from dpkg-shlibdeps
# over the binary (libuv1, libyaml-0-2, libssl3 for the crypto driver,
# libsqlite3-0 and libargon2-1 for app passwords, libqrencode4 for `imapguard
# totp enroll`'s QR code, libc6; mbedTLS is linked statically from our own
# build), plus adduser for postinst. tests/integration/test_package.py checks
# that each of them is there.
set(CPACK_GENERATOR DEB)
set(CPACK_PACKAGE_NAME imapguard)
set(CPACK_PACKAGE_VERSION ${PROJECT_VERSION})
set(CPACK_PACKAGE_CONTACT "${IG_PACKAGE_MAINTAINER}")
set(CPACK_PACKAGING_INSTALL_PREFIX /usr)
set(CPACK_STRIP_FILES TRUE)
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)
set(CPACK_DEBIAN_PACKAGE_RELEASE 1)
set(CPACK_DEBIAN_PACKAGE_SECTION mail)
set(CPACK_DEBIAN_PACKAGE_PRIORITY optional)
set(CPACK_DEBIAN_PACKAGE_MAINTAINER "${IG_PACKAGE_MAINTAINER}")
set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS ON)
set(CPACK_DEBIAN_PACKAGE_DEPENDS "adduser")
set(CPACK_DEBIAN_PACKAGE_SUGGESTS "logrotate")
set(CPACK_DEBIAN_PACKAGE_DESCRIPTION
"TLS-terminating IMAP security proxy
imapguard stands in front of an unmodified IMAP server. It terminates
implicit TLS (993) or upgrades cleartext connections with STARTTLS (143),
owns the whole not-authenticated phase of IMAP, judges every login attempt
against a YAML policy (TLS required, SASL mechanisms, per-user and
per-network rules) and a brute-force and password-spraying rate limiter,
and only then connects the client to the backend and relays the session.")
# Maintainer scripts and the conffiles list. conffiles is written here: the
# paths are the package's (/etc, whatever the build tree's prefix).
file(WRITE ${CMAKE_BINARY_DIR}/packaging/deb/conffiles
  "/etc/imapguard/imapguard.yaml\n/etc/logrotate.d/imapguard\n")
set(CPACK_DEBIAN_PACKAGE_CONTROL_EXTRA
  ${CMAKE_SOURCE_DIR}/packaging/deb/postinst
  ${CMAKE_SOURCE_DIR}/packaging/deb/prerm
  ${CMAKE_SOURCE_DIR}/packaging/deb/postrm
  ${CMAKE_BINARY_DIR}/packaging/deb/conffiles)
set(CPACK_DEBIAN_PACKAGE_CONTROL_STRICT_PERMISSION TRUE)
include(CPack)
