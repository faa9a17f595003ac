/* imapguard: entry point (placeholder while the core lands). */
#include <stdio.h>
#include <string.h>

int
main(int argc, char **argv)
{
	if (argc > 1 && strcmp(argv[1], "--version") == 0) {
		printf("imapguard %s\n", IG_VERSION);
		return 0;
	}
	fprintf(stderr, "usage: imapguard [-t] -c FILE\n");
	return 2;
}
