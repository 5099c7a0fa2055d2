// Another user's program on the node: N calls of operator new and delete, timed; prints ns.
// Usage: newdelete N
#include <chrono>
#include <cstdio>
#include <cstdlib>

int main(int argc, char **argv)
{
	long n = argc > 1 ? atol(argv[1]) : 1000000;
	auto start = std::chrono::steady_clock::now();
	for (long i = 0; i < n; i++) {
		// explicit calls: a new-expression's allocation may be elided, these may not
		void *p = ::operator new(sizeof(long));
		*static_cast<volatile long *>(p) = i;
		::operator delete(p);
	}
	auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(
		std::chrono::steady_clock::now() - start);
	std::printf("%lld\n", static_cast<long long>(ns.count()));
	return 0;
}
