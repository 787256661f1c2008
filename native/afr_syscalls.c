/* Syscall shims: one positional read with flags, cachestat(2), and their
 * capability constants (build_native.py includes this file first; the
 * others use afr_pread_flags).
 *
 * Both calls go through syscall(2) directly: glibc 2.27/2.28's preadv2
 * wrapper answers EOPNOTSUPP for any flag, and glibc has no cachestat
 * wrapper at all. Errors come back as -errno so that a page-cache miss
 * (-EAGAIN) costs a compare, not a raised Python exception. */
#include <errno.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <unistd.h>

#ifdef SYS_preadv2
#define AFR_HAS_PREADV2 1
#else
#define AFR_HAS_PREADV2 0
#endif

#ifndef RWF_NOWAIT
#define RWF_NOWAIT 0x00000008
#endif

/* cachestat(2) arrived in Linux 6.5; it is syscall 451 on every arch that
 * uses the generic table, x86_64 included. */
#if defined(__linux__) && !defined(SYS_cachestat) && (defined(__x86_64__) || defined(__aarch64__))
#define SYS_cachestat 451
#endif
#ifdef SYS_cachestat
#define AFR_HAS_CACHESTAT 1
#else
#define AFR_HAS_CACHESTAT 0
#endif

struct afr_cachestat_range {
    unsigned long long off;
    unsigned long long len;
};

struct afr_cachestat {
    unsigned long long nr_cache;
    unsigned long long nr_dirty;
    unsigned long long nr_writeback;
    unsigned long long nr_evicted;
    unsigned long long nr_recently_evicted;
};

static long afr_pread_flags(int fd, char *buf, size_t len, long long offset, int flags)
{
#if AFR_HAS_PREADV2
    struct iovec iov;
    long n;
    iov.iov_base = buf;
    iov.iov_len = len;
    /* The kernel takes the offset as (low, high) halves; on 64-bit ABIs
     * the low half carries all of it. */
    n = syscall(SYS_preadv2, fd, &iov, 1, (unsigned long)offset,
                (unsigned long)((unsigned long long)offset >> 32 >> 32), flags);
    return n < 0 ? -errno : n;
#else
    (void)fd; (void)buf; (void)len; (void)offset; (void)flags;
    return -ENOSYS;
#endif
}

static int afr_cachestat(int fd, long long offset, long long len,
                         unsigned long long *cached, unsigned long long *pages)
{
#if AFR_HAS_CACHESTAT
    struct afr_cachestat_range range;
    struct afr_cachestat cs;
    long page = sysconf(_SC_PAGESIZE);
    unsigned long long first, last;
    memset(&cs, 0, sizeof cs);
    range.off = (unsigned long long)offset;
    range.len = (unsigned long long)len;
    if (syscall(SYS_cachestat, fd, &range, &cs, 0) < 0)
        return -errno;
    first = (unsigned long long)offset / (unsigned long long)page;
    last = ((unsigned long long)offset + (unsigned long long)len + page - 1) / page;
    *cached = cs.nr_cache;
    *pages = last > first ? last - first : 0;
    return 0;
#else
    (void)fd; (void)offset; (void)len; (void)cached; (void)pages;
    return -ENOSYS;
#endif
}
