/*
 * bcryptprimitives.dll for Wine 8.0, which lacks it.
 *
 * Rust's std for x86_64-pc-windows-gnu imports ProcessPrng from this DLL to
 * seed HashMap keys; without it every Rust binary fails to load (c0000135)
 * and prints nothing. This DLL exports ProcessPrng and fills the buffer
 * through RtlGenRandom (SystemFunction036 in advapi32), which Wine has.
 * It is a test fixture for CI only; it is never shipped.
 */
#include <windows.h>

BOOLEAN WINAPI SystemFunction036(PVOID buffer, ULONG length);

__declspec(dllexport) BOOL WINAPI ProcessPrng(PBYTE data, SIZE_T len)
{
    while (len > 0) {
        ULONG n = len > 0x7fffffff ? 0x7fffffff : (ULONG)len;
        if (!SystemFunction036(data, n))
            return FALSE;
        data += n;
        len -= n;
    }
    return TRUE;
}
