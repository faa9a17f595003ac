/*
 * `imapguard ticket-key new|rotate FILE`: the operator's side of
 * tls.ticket_key_file (crypto/ticket_keys.h). Writes the file atomically;
 * the running proxies notice the change themselves (proxy/server.c).
 */
#ifndef IG_PROXY_TICKETKEY_H
#define IG_PROXY_TICKETKEY_H

/*
 * Runs the subcommand; argv[0] is "ticket-key". Prints what it wrote (key
 * names, never key bytes) on stdout, problems on stderr. Returns the exit
 * status: 0 written, 1 failed (nothing changed), 2 usage.
 */
int ig_ticketkey_main(int argc, char **argv);

#endif /* IG_PROXY_TICKETKEY_H */
