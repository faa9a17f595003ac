/*
 * The human explanation of a policy decision (`imapguard explain`).
 */
#ifndef IG_POLICY_EXPLAIN_H
#define IG_POLICY_EXPLAIN_H

#include <stdio.h>

#include "policy/decide.h"

/*
 * Writes a human explanation of the decision to out: the rules considered
 * (which matched and why not), the value of each key and the layer it came
 * from, each check in order, and the verdict. Used by `imapguard explain`.
 * Rule locations print as "(config_path:LINE)", or "(line LINE)" when
 * config_path is NULL. A monitored refusal ends in "verdict: would deny
 * (monitor mode), allowed". Returns the verdict, the same as
 * ig_policy_decide() gives for these facts.
 */
enum ig_verdict ig_policy_explain(const struct ig_policy_conf *p,
    const struct ig_login_facts *f, const char *config_path, FILE *out);

#endif /* IG_POLICY_EXPLAIN_H */
