/* USDT probes with known hits (issue 26, item 5): N hits of dc:tick (two arguments: the round
 * and a 64-bit value), then N hits of dc:guarded, a probe with a semaphore whose arguments are
 * only computed while someone traces it (the kernel counts the tracers in the semaphore);
 * then the program prints "<pid> <guarded hits it saw enabled>".
 * With "await", the program first waits until its semaphore is set (its uprobes are in).
 * Usage: usdt_probes N [await] */
#define _SDT_HAS_SEMAPHORES 1
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <sys/sdt.h>

/* the probes' semaphores: the kernel increments one per tracer (dc:tick fires regardless) */
unsigned short dc_tick_semaphore __attribute__((unused, section(".probes")));
unsigned short dc_guarded_semaphore __attribute__((unused, section(".probes")));

int main(int argc, char **argv)
{
	long n = argc > 1 ? atol(argv[1]) : 0;
	long enabled = 0;

	if (argc > 2 && strcmp(argv[2], "await") == 0) {
		for (int i = 0; i < 5000 && !dc_guarded_semaphore; i++)
			nanosleep(&(struct timespec){0, 1000000}, NULL);
		if (!dc_guarded_semaphore)
			return 3;
	}
	for (long i = 0; i < n; i++)
		DTRACE_PROBE2(dc, tick, i, (long long)i << 33);
	for (long i = 0; i < n; i++) {
		if (dc_guarded_semaphore) {
			enabled++;
			DTRACE_PROBE3(dc, guarded, i, -i, 7);
		}
	}
	printf("%d %ld\n", getpid(), enabled);
	return 0;
}
