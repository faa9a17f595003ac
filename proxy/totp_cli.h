/*
 * `imapguard totp`: the second factor for issuing app passwords (issue
 * 17). A user enrolled here gets no app password from `imapguard apppass
 * add` without the current code of their authenticator app (--totp).
 *
 *   imapguard totp -c FILE enroll USER [--issuer NAME] [--force]
 *                  [--qr auto|ansi|light|dark|none]
 *   imapguard totp -c FILE remove USER
 *   imapguard totp -c FILE status [USER]
 *
 * The enrolments live in the app password store (apppass/store.h), the
 * secret in clear: TOTP needs it to compute the codes.
 */
#ifndef IG_PROXY_TOTP_CLI_H
#define IG_PROXY_TOTP_CLI_H

/*
 * Runs the command; argv[0] is "totp" and options may come anywhere ("--"
 * ends them). Started as root with the configuration's `user`, it becomes
 * that user before it opens the store (proxy/storecli.h). enroll draws a
 * secret, stores it and prints it once, as an otpauth:// URI, in base32 and
 * as a QR code, on stdout (written with write(2) and wiped); nothing else
 * ever shows it. Returns the exit status: 0 done, 1 not enrolled (remove,
 * status USER), 2 usage, configuration or store error, or enroll of an
 * enrolled user without --force.
 */
int ig_totp_cli_main(int argc, char **argv);

#endif /* IG_PROXY_TOTP_CLI_H */
