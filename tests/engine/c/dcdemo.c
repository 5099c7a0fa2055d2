/* The shared library the uprobe tests trace. */
int dc_add(int a, int b)
{
	return a + b;
}

long dc_scale(long x)
{
	return x * 3;
}

int dc_peek(const int *p)
{
	return *p + 1;
}
