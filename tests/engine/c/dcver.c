/* A shared library with symbol versions, as glibc has them: dc_ver has an old, hidden version
 * (dc_ver@DC_1, listed first) and the default one programs link against today (dc_ver@@DC_2);
 * dc_ifunc is an IFUNC, which no reader offers (a uprobe on it would fire in the resolver). */
int dc_ver_old(int x)
{
	return x - 1;
}

int dc_ver_new(int x)
{
	return x + 1;
}

__asm__(".symver dc_ver_old, dc_ver@DC_1");
__asm__(".symver dc_ver_new, dc_ver@@DC_2");

int dc_plain(int x)
{
	return x * 2;
}

static int dc_impl(int x)
{
	return x;
}

static void *dc_resolve(void)
{
	return (void *)dc_impl;
}

int dc_ifunc(int x) __attribute__((ifunc("dc_resolve")));
