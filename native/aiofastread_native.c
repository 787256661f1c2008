/* The C side of aiofastread: one positional read with flags, cachestat(2),
 * and capability constants. Only aiofastread/_native.py imports it.
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
#define AFR_RWF_NOWAIT RWF_NOWAIT

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

#define AFR_PAGE_SIZE (sysconf(_SC_PAGESIZE))

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


/* ------------------------------------------------------------------------
 * read_nowait(fd, size, offset) -> bytes | int, as a CPython function.
 *
 * The cffi call above needs a buffer of ours and then a second copy into
 * the bytes object the caller gets (ffi.unpack): 0.65 us of a 16 KiB hit,
 * plus cffi's argument conversion. This function reads straight into a new
 * bytes object, as os.pread does, so an inline hit costs one copy
 * (docs/performance.md, "Where the time goes": 1.9x -> 1.4x of os.pread).
 * It keeps the GIL: a NOWAIT read never waits for the device.
 *
 * cffi cannot return a PyObject*, so Python fetches the function object
 * once, at import, through afr_read_nowait_function() (see _native.py).
 * PyPy has no CPython C API: there the cffi path is used. */
#ifndef PYPY_VERSION
static PyObject *afr_read_nowait_impl(PyObject *self, PyObject *argtuple)
{
    /* METH_VARARGS: cffi builds against the limited API of an old Python,
     * which has no METH_FASTCALL. */
    PyObject *const *args;
    Py_ssize_t nargs = PyTuple_Size(argtuple);
    PyObject *items[3];
    long fd;
    Py_ssize_t size;
    long long offset;
    long n;
    PyObject *out, *shorter;
    (void)self;
    if (nargs != 3) {
        PyErr_SetString(PyExc_TypeError, "read_nowait(fd, size, offset) takes 3 arguments");
        return NULL;
    }
    items[0] = PyTuple_GetItem(argtuple, 0);
    items[1] = PyTuple_GetItem(argtuple, 1);
    items[2] = PyTuple_GetItem(argtuple, 2);
    args = items;
    fd = PyLong_AsLong(args[0]);
    if (fd == -1 && PyErr_Occurred())
        return NULL;
    size = PyLong_AsSsize_t(args[1]);
    if (size == -1 && PyErr_Occurred())
        return NULL;
    offset = PyLong_AsLongLong(args[2]);
    if (offset == -1 && PyErr_Occurred())
        return NULL;
    if (size < 0 || offset < 0) {
        PyErr_SetString(PyExc_ValueError, "read_nowait: size and offset must be >= 0");
        return NULL;
    }
    out = PyBytes_FromStringAndSize(NULL, size);
    if (out == NULL)
        return NULL;
    n = afr_pread_flags((int)fd, PyBytes_AsString(out), (size_t)size, offset, AFR_RWF_NOWAIT);
    if (n == size)
        return out;
    if (n < 0) {
        Py_DECREF(out);
        return PyLong_FromLong(n);
    }
    /* Short (a cached prefix, or EOF): rare, so a copy is fine here. */
    shorter = PyBytes_FromStringAndSize(PyBytes_AsString(out), n);
    Py_DECREF(out);
    return shorter;
}

static PyMethodDef afr_read_nowait_def = {
    "read_nowait",
    (PyCFunction)(void (*)(void))afr_read_nowait_impl,
    METH_VARARGS,
    "read_nowait(fd, size, offset) -> bytes (complete, or short at a cached "
    "prefix or EOF) or a negative errno (-EAGAIN: not cached)",
};

static PyObject *afr_read_nowait_object = NULL;

static void *afr_read_nowait_function(void)
{
    /* cffi calls C with the GIL released; the C API needs it. */
    PyGILState_STATE gil = PyGILState_Ensure();
    if (afr_read_nowait_object == NULL)
        afr_read_nowait_object = PyCFunction_NewEx(&afr_read_nowait_def, NULL, NULL);
    PyGILState_Release(gil);
    return afr_read_nowait_object; /* one reference, held forever */
}
#define AFR_HAS_CAPI_READ 1
#else
static void *afr_read_nowait_function(void) { return NULL; }
#define AFR_HAS_CAPI_READ 0
#endif
