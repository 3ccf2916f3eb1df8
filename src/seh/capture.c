/*
 * Structured-exception-protected copies between kernel buffers and a user-mode
 * requestor's METHOD_NEITHER buffers.
 *
 * Rust cannot catch an access violation, so the one place the driver touches a user
 * address is here: ProbeForRead/ProbeForWrite (which raise on a bad range) and the
 * copy, inside __try. No includes, so it builds with MSVC in the eWDK and with clang
 * against mingw-w64 in the Linux cross-build alike. The copy loop is in its own
 * noinline function: clang only protects faults raised inside calls made from a
 * __try body (or with -fasync-exceptions), so the loads and stores must not be inlined
 * into it.
 */

typedef unsigned long long ksalloc_size;

__declspec(dllimport) void ProbeForRead(const volatile void *Address, ksalloc_size Length, unsigned long Alignment);
__declspec(dllimport) void ProbeForWrite(volatile void *Address, ksalloc_size Length, unsigned long Alignment);

#define KSALLOC_EXCEPTION_EXECUTE_HANDLER 1

static __declspec(noinline) void ksalloc_copy(volatile unsigned char *dst, const volatile unsigned char *src, ksalloc_size len)
{
    ksalloc_size i;
    for (i = 0; i < len; i++) {
        dst[i] = src[i];
    }
}

/* Copies len bytes from a user address into a kernel buffer. Returns 0 or the
 * exception code (e.g. STATUS_ACCESS_VIOLATION, STATUS_DATATYPE_MISALIGNMENT). */
long ksalloc_capture_from_user(void *kernel_dst, const void *user_src, ksalloc_size len, unsigned long align)
{
    __try {
        ProbeForRead(user_src, len, align);
        ksalloc_copy((volatile unsigned char *)kernel_dst, (const volatile unsigned char *)user_src, len);
    } __except (KSALLOC_EXCEPTION_EXECUTE_HANDLER) {
        return _exception_code();
    }
    return 0;
}

/* Copies len bytes from a kernel buffer out to a user address. Returns 0 or the
 * exception code. */
long ksalloc_publish_to_user(void *user_dst, const void *kernel_src, ksalloc_size len, unsigned long align)
{
    __try {
        ProbeForWrite(user_dst, len, align);
        ksalloc_copy((volatile unsigned char *)user_dst, (const volatile unsigned char *)kernel_src, len);
    } __except (KSALLOC_EXCEPTION_EXECUTE_HANDLER) {
        return _exception_code();
    }
    return 0;
}
