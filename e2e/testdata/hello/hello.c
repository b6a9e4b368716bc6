/* The server of the sandbox benchmark (spawn-hello): write one line to
 * the connection and exit. Built -static -nostdlib with raw system calls,
 * so that starting it costs the kernel's exec alone (no loader, no C
 * library start-up): what the benchmark compares is gxinetd's work. */
#if defined(__x86_64__)
static long sys3(long n, long a, long b, long c)
{
	long r;
	__asm__ volatile("syscall" : "=a"(r) : "a"(n), "D"(a), "S"(b), "d"(c) : "rcx", "r11", "memory");
	return r;
}
enum { SYS_WRITE = 1, SYS_EXIT = 60 };
#elif defined(__aarch64__)
static long sys3(long n, long a, long b, long c)
{
	register long x8 __asm__("x8") = n;
	register long x0 __asm__("x0") = a;
	register long x1 __asm__("x1") = b;
	register long x2 __asm__("x2") = c;
	__asm__ volatile("svc 0" : "+r"(x0) : "r"(x8), "r"(x1), "r"(x2) : "memory");
	return x0;
}
enum { SYS_WRITE = 64, SYS_EXIT = 93 };
#endif

void _start(void)
{
	static const char m[] = "hello from spawned server\r\n";
	long off = 0, n;
	while (off < (long)(sizeof m - 1)) {
		n = sys3(SYS_WRITE, 1, (long)(m + off), (long)(sizeof m - 1 - off));
		if (n <= 0)
			sys3(SYS_EXIT, 1, 0, 0);
		off += n;
	}
	sys3(SYS_EXIT, 0, 0, 0);
	for (;;)
		;
}
