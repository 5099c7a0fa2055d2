/* Calls the default version of dc_ver (dc_ver@@DC_2: x + 1) for x in 0..4, dc_plain once.
 * Prints its pid. */
#include <stdio.h>
#include <unistd.h>

int dc_ver(int x);
int dc_plain(int x);

int main(void)
{
	int total = 0;

	for (int x = 0; x < 5; x++)
		total += dc_ver(x);
	total += dc_plain(21);
	printf("%d %d\n", getpid(), total);
	return 0;
}
