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

/* As the WDK's excpt.h declares it: the code of the exception being handled, valid only
 * inside an __except filter expression (and, on Windows, its block). */
unsigned long __cdecl _exception_code(void);

__declspec(dllimport) void ProbeForRead(const volatile void *Address, ksalloc_size Length, unsigned long Alignment);
__declspec(dllimport) void ProbeForWrite(volatile void *Address, ksalloc_size Length, unsigned long Alignment);

#define KSALLOC_EXCEPTION_EXECUTE_HANDLER 1
#define KSALLOC_STATUS_ACCESS_VIOLATION ((long)0xC0000005L)

/* The status the handler path returns. The code is read in the filter expression: in the
 * __except block it is not reliable (Wine 8's __C_specific_handler unwinds with 0, which
 * is what clang's block then reads), and whatever code arrives, the handler path must
 * fail: a code NT_SUCCESS would read as success (0, or any value with the top bit clear)
 * becomes STATUS_ACCESS_VIOLATION. */
static long ksalloc_failure(unsigned long code)
{
    long status = (long)code;
    return status < 0 ? status : KSALLOC_STATUS_ACCESS_VIOLATION;
}

static __declspec(noinline) void ksalloc_copy(volatile unsigned char *dst, const volatile unsigned char *src, ksalloc_size len)
{
    ksalloc_size i;
    for (i = 0; i < len; i++) {
        dst[i] = src[i];
    }
}

/* Copies len bytes from a user address into a kernel buffer. Returns 0, or a failing
 * NTSTATUS: the exception's code (e.g. STATUS_ACCESS_VIOLATION,
 * STATUS_DATATYPE_MISALIGNMENT) or STATUS_ACCESS_VIOLATION (ksalloc_failure). */
long ksalloc_capture_from_user(void *kernel_dst, const void *user_src, ksalloc_size len, unsigned long align)
{
    volatile unsigned long code = 0;
    __try {
        ProbeForRead(user_src, len, align);
        ksalloc_copy((volatile unsigned char *)kernel_dst, (const volatile unsigned char *)user_src, len);
    } __except (code = _exception_code(), KSALLOC_EXCEPTION_EXECUTE_HANDLER) {
        return ksalloc_failure(code);
    }
    return 0;
}

/* Copies len bytes from a kernel buffer out to a user address. Returns as
 * ksalloc_capture_from_user. */
long ksalloc_publish_to_user(void *user_dst, const void *kernel_src, ksalloc_size len, unsigned long align)
{
    volatile unsigned long code = 0;
    __try {
        ProbeForWrite(user_dst, len, align);
        ksalloc_copy((volatile unsigned char *)user_dst, (const volatile unsigned char *)kernel_src, len);
    } __except (code = _exception_code(), KSALLOC_EXCEPTION_EXECUTE_HANDLER) {
        return ksalloc_failure(code);
    }
    return 0;
}
