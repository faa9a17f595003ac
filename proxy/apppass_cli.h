/*
 * `imapguard apppass`: issue, list and revoke app passwords in the store
 * named by the configuration's app_passwords.store (apppass/store.h).
 *
 *   imapguard apppass -c FILE add USER --label LABEL [--expires DURATION]
 *                     [--from NETWORK]... [--totp CODE] [--quiet]
 *   imapguard apppass -c FILE list [USER]
 *   imapguard apppass -c FILE revoke ID
 *   imapguard apppass -c FILE revoke --all USER
 */
#ifndef IG_PROXY_APPPASS_CLI_H
#define IG_PROXY_APPPASS_CLI_H

/*
 * Runs the command; argv[0] is "apppass" and options may come anywhere
 * ("--" ends them). Started as root with the configuration's `user`, it
 * becomes that user before it opens the store, so that the file belongs to
 * the proxy. For a user enrolled with `imapguard totp enroll` (proxy/
 * totp_cli.h), add issues nothing without the user's current TOTP code
 * (--totp), and accepts a code only once. Returns the exit status: 0 done,
 * 1 not found (no such id, no app password of that user), 2 usage,
 * configuration or store error, 3 (add) the TOTP code is missing, wrong or
 * was used already. The password `add` draws is printed once on stdout and
 * wiped; nothing else ever shows a secret.
 */
int ig_apppass_cli_main(int argc, char **argv);

#endif /* IG_PROXY_APPPASS_CLI_H */
