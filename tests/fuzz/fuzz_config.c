/*
 * Fuzz target for config/: any bytes as a configuration file. The
 * loader must never crash, leak or read out of bounds, whatever it reports.
 * Backend names are not resolved (IG_CF_NO_RESOLVE: no DNS while fuzzing);
 * file names are only stat()ed, so missing certificates are plain errors.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "config/config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static FILE *devnull;
	if (devnull == NULL)
		devnull = fopen("/dev/null", "w");
	struct ig_config *cfg = NULL;
	int rc = ig_config_load_string_flags("fuzz.yaml", (const char *)data, size,
	    IG_CF_NO_RESOLVE, &cfg, devnull != NULL ? devnull : stderr);
	if ((rc == 0) != (cfg != NULL))
		__builtin_trap(); /* the contract: *out is set exactly on success */
	ig_config_free(cfg);
	return 0;
}
