/* Opens that cannot block: openat2(2) with RESOLVE_CACHED, the statx that
 * follows it, and fstatfs for the per-filesystem policy. Only
 * aiofastread/_inline_open.py calls these (through _native.native_module()).
 *
 * openat2(RESOLVE_CACHED) (Linux >= 5.12) walks the path in the dentry cache
 * only and fails with EAGAIN where a step would need I/O; io_uring tries its
 * opens this way inline before it hands them to a worker, adding O_NONBLOCK
 * so that a FIFO or a device cannot wait in its open either. What the
 * filesystem's own ->open does is another matter (FUSE, NFS, CIFS, 9p and
 * ceph ask a daemon or a server): the Python side never tries a filesystem
 * it has not seen to be local (_inline_open.py). */
#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <unistd.h>

/* openat2 is 437 on every architecture (it arrived after the syscall tables
 * were unified, Linux 5.6); glibc has no wrapper before 2.36 or so. */
#if defined(__linux__) && !defined(SYS_openat2)
#define SYS_openat2 437
#endif
#ifdef SYS_openat2
#define AFR_HAS_OPENAT2 1
#else
#define AFR_HAS_OPENAT2 0
#endif

/* struct open_how and RESOLVE_CACHED from linux/openat2.h, spelt out so
 * that older kernel headers build too. */
struct afr_open_how {
    unsigned long long flags;
    unsigned long long mode;
    unsigned long long resolve;
};
#define AFR_RESOLVE_CACHED 0x20ULL

#ifndef AT_STATX_DONT_SYNC
#define AT_STATX_DONT_SYNC 0x4000
#endif

/* Open `path` read-only from the dentry cache only. Returns the descriptor
 * (>= 0) or -errno (-EAGAIN: some step of the path is not cached).
 * On success out[] = {st_mode, st_size, st_dev, st_ino}, read with
 * statx(AT_STATX_DONT_SYNC) (a network filesystem answers from its cached
 * attributes, no round trip), or fstat where statx is refused. A regular
 * file gets O_NONBLOCK cleared again; anything else is left for the caller
 * to close (in its pool: closing a device can wait). */
static int afr_open_cached(const char *path, long long *out)
{
#if AFR_HAS_OPENAT2
    struct afr_open_how how;
    struct statx stx;
    struct stat st;
    int fd;
    how.flags = O_RDONLY | O_CLOEXEC | O_NONBLOCK;
    how.mode = 0;
    how.resolve = AFR_RESOLVE_CACHED;
    fd = (int)syscall(SYS_openat2, AT_FDCWD, path, &how, sizeof how);
    if (fd < 0)
        return -errno;
    if (statx(fd, "", AT_EMPTY_PATH | AT_STATX_DONT_SYNC,
              STATX_TYPE | STATX_MODE | STATX_SIZE | STATX_INO, &stx) == 0) {
        out[0] = stx.stx_mode;
        out[1] = (long long)stx.stx_size;
        out[2] = (long long)makedev(stx.stx_dev_major, stx.stx_dev_minor);
        out[3] = (long long)stx.stx_ino;
    } else if (fstat(fd, &st) == 0) {
        out[0] = st.st_mode;
        out[1] = (long long)st.st_size;
        out[2] = (long long)st.st_dev;
        out[3] = (long long)st.st_ino;
    } else {
        int err = errno;
        close(fd); /* not even fstat: give up before anything else happens */
        return -err;
    }
    /* The only status flag asked for was O_NONBLOCK: clear them all. */
    if (S_ISREG(out[0]) && fcntl(fd, F_SETFL, 0) < 0)
        out[0] = 0; /* the caller treats it as "not a regular file" */
    return fd;
#else
    (void)path; (void)out;
    return -ENOSYS;
#endif
}

/* fstatfs(2)'s f_type (a filesystem magic number, linux/magic.h), or
 * -errno. Blocking on a network filesystem: call it in the pool. */
static long long afr_fstatfs_type(int fd)
{
    struct statfs sfs;
    if (fstatfs(fd, &sfs) < 0)
        return -errno;
    return (long long)(unsigned long)sfs.f_type;
}
