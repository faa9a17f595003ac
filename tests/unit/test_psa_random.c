/*
 * Fork protection of mbedTLS's PSA RNG with our patch
 * (crypto/patches/0006-psa-random-fork-check.patch): a pthread_atfork()
 * generation replaces the getpid() system call that mbedTLS made on every
 * psa_generate_random() call. Each row forks children (and grandchildren)
 * that draw from the RNG they inherited; every draw, in every process, must
 * differ from every other, which fails if a child does not reseed (it would
 * repeat its parent's next output, or its sibling's).
 *
 * The test links with --wrap=getpid (tests/CMakeLists.txt), so mbedTLS's
 * calls to getpid() are counted: draws in a process that has not forked
 * since its last check make none, and the first draw in a child makes one.
 *
 * `test_psa_random --draws N` only draws N times (for strace: the RNG's
 * getpid() calls, or their absence, outside the wrapper).
 */
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>
#include <cmocka.h>

#include <psa/crypto.h>

#define DRAW 32        /* bytes per draw: a coincidence is impossible */
#define CHILDREN_MAX 3
/* Draws per test at most: two in the parent, three per child. */
#define DRAWS_MAX (2 + 3 * CHILDREN_MAX)

pid_t __real_getpid(void);
pid_t __wrap_getpid(void);

static unsigned getpid_calls; /* calls through the wrapper, this process */

pid_t
__wrap_getpid(void)
{
	getpid_calls++;
	return __real_getpid();
}

struct fork_row {
	const char *name;
	bool parent_before; /* the parent draws before forking */
	int children;       /* forked one after the other */
	bool grandchild;    /* each child forks one after its first draw */
};

static const struct fork_row fork_rows[] = {
	{ "parent draws before and after", true, 1, false },
	{ "parent draws only after", false, 1, false },
	{ "three children", true, 3, false },
	{ "three children, parent never before", false, 3, false },
	{ "grandchildren", true, 2, true },
	{ "grandchild, parent never before", false, 1, true },
};

/* One draw, and the number of getpid() calls it made. */
static int
draw(uint8_t out[DRAW], unsigned *calls)
{
	unsigned before = getpid_calls;

	*calls = 0;
	if (psa_generate_random(out, DRAW) != PSA_SUCCESS)
		return -1;
	*calls = getpid_calls - before;
	return 0;
}

/*
 * In a child: draw and write the output to fd; the first draw after a fork
 * must call getpid() once (the generation changed), a second none. Exits
 * non-zero on failure (no cmocka in a child).
 */
static void
child_draws(int fd, int draws)
{
	uint8_t out[DRAW];
	unsigned calls;

	for (int i = 0; i < draws; i++) {
		if (draw(out, &calls) != 0)
			_exit(2);
		if (calls != (i == 0 ? 1u : 0u))
			_exit(3);
		if (write(fd, out, DRAW) != DRAW)
			_exit(4);
	}
}

static void
wait_ok(pid_t pid)
{
	int status;

	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
}

/* The child's side of a row: one draw; with a grandchild, fork it (it
   draws once), wait for it, and draw again (the child's state must not be
   the grandchild's). The pipe gets child, grandchild, child in order. */
static void
run_child(const struct fork_row *row, int fd)
{
	child_draws(fd, 1);
	if (row->grandchild) {
		pid_t g = fork();
		if (g < 0)
			_exit(5);
		if (g == 0) {
			child_draws(fd, 1);
			_exit(0);
		}
		int status;
		if (waitpid(g, &status, 0) != g || !WIFEXITED(status) ||
		    WEXITSTATUS(status) != 0)
			_exit(6);
		/* No fork since this process's first draw checked its pid: the
		   grandchild's fork bumped only the grandchild's generation. */
		uint8_t out[DRAW];
		unsigned calls;
		if (draw(out, &calls) != 0 || calls != 0)
			_exit(7);
		if (write(fd, out, DRAW) != DRAW)
			_exit(4);
	}
	_exit(0);
}

static void
test_fork(void **state)
{
	(void)state;
	uint8_t outs[DRAWS_MAX][DRAW];
	size_t n = 0;
	unsigned calls;

	for (size_t r = 0; r < sizeof(fork_rows) / sizeof(fork_rows[0]); r++) {
		const struct fork_row *row = &fork_rows[r];
		n = 0;
		if (row->parent_before) {
			assert_int_equal(draw(outs[n++], &calls), 0);
		}
		for (int c = 0; c < row->children; c++) {
			int p[2];
			assert_int_equal(pipe(p), 0);
			pid_t pid = fork();
			assert_true(pid >= 0);
			if (pid == 0) {
				close(p[0]);
				run_child(row, p[1]);
			}
			close(p[1]);
			int expect = row->grandchild ? 3 : 1;
			for (int i = 0; i < expect; i++) {
				assert_true(n < DRAWS_MAX);
				assert_int_equal(read(p[0], outs[n++], DRAW), DRAW);
			}
			close(p[0]);
			wait_ok(pid);
		}
		/* The parent's next output: what an unreseeded child repeats. */
		assert_int_equal(draw(outs[n++], &calls), 0);
		assert_int_equal(calls, 0);
		for (size_t i = 0; i < n; i++) {
			for (size_t j = i + 1; j < n; j++) {
				if (memcmp(outs[i], outs[j], DRAW) == 0)
					fail_msg("%s: draws %zu and %zu are equal", row->name, i, j);
			}
		}
	}
}

/* Many draws after the first: no getpid() at all. */
static void
test_no_getpid(void **state)
{
	(void)state;
	uint8_t out[DRAW];
	unsigned calls, total = 0;

	for (int i = 0; i < 1000; i++) {
		assert_int_equal(draw(out, &calls), 0);
		total += calls;
	}
	assert_int_equal(total, 0);
}

int
main(int argc, char **argv)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_no_getpid),
		cmocka_unit_test(test_fork),
	};
	int failed;

	if (psa_crypto_init() != PSA_SUCCESS)
		return 1;
	if (argc == 3 && strcmp(argv[1], "--draws") == 0) {
		uint8_t out[DRAW];
		long draws = strtol(argv[2], NULL, 10);
		for (long i = 0; i < draws; i++) {
			if (psa_generate_random(out, sizeof(out)) != PSA_SUCCESS)
				return 1;
		}
		printf("%ld draws, %u getpid calls from mbedTLS\n", draws, getpid_calls);
		mbedtls_psa_crypto_free();
		return 0;
	}
	failed = cmocka_run_group_tests(tests, NULL, NULL);
	mbedtls_psa_crypto_free();
	return failed;
}
