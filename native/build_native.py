"""cffi build script for aiofastread's native seam (API mode).

Built by setuptools through ``cffi_modules`` in setup.py. The extension is
``optional``: when no C compiler is present the install still succeeds and
``aiofastread._native`` falls back to ``os.preadv`` (or to the pool only).

native/ holds one C file per job; ``SOURCES`` lists them in include order,
each with the declarations it exports to Python (its cdef). To add a file,
add one entry here (and nothing else: MANIFEST.in ships native/*.c).
"""

from __future__ import annotations

from pathlib import Path

from cffi import FFI

HERE = Path(__file__).resolve().parent

SOURCES: tuple[tuple[str, str], ...] = (
    (
        "afr_syscalls.c",  # preadv2 with flags and cachestat(2), via syscall(2)
        """
        /* Positional read with RWF_* flags. Returns bytes read (>= 0) or -errno;
           never raises, so a miss (-EAGAIN) costs no Python exception. */
        long afr_pread_flags(int fd, char *buf, size_t len, long long offset, int flags);

        /* cachestat(2) for [offset, offset+len). On success returns 0 and stores
           the cached page count and the page count of the range; else -errno. */
        int afr_cachestat(int fd, long long offset, long long len,
                          unsigned long long *cached, unsigned long long *pages);

        static const int AFR_HAS_PREADV2;
        static const int AFR_HAS_CACHESTAT;
        """,
    ),
    (
        "afr_read_nowait.c",  # the inline read as a CPython function
        """
        /* The same read as a CPython function returning bytes (one copy);
           NULL where there is no CPython C API (PyPy). A new reference is never
           handed out: the object lives as long as the process. */
        void *afr_read_nowait_function(void);
        /* read_nowait_into(fd, buffer, size, offset) -> n or -errno, the
           same way (a bytearray in C, other buffers through cffi). */
        void *afr_read_nowait_into_function(void);

        static const int AFR_HAS_CAPI_READ;
        """,
    ),
    (
        "afr_ready.c",  # Ready: an awaitable already done (the C hit path's answer)
        "",
    ),
    (
        "afr_lines.c",  # LinesCore: `async for` over text lines decoded ahead (issue 11)
        "",
    ),
    (
        "afr_hit.c",  # the reader's hit path and the C fields it reads (issue 11)
        """
        /* A dict of the hit path's types (ReaderCore, HandleCore, ...) and
           functions (bind, expect_backend, hit_syscalls), held forever; NULL
           where there is no CPython C API (PyPy). */
        void *afr_hit_objects(void);

        static const int AFR_HAS_HIT_PATH;
        """,
    ),
    (
        "afr_text.c",  # the direct text path's hit (issue 9), after afr_hit.c
        "",
    ),
    (
        "afr_pool.c",  # the native miss pool
        """
        /* C threads, one eventfd per event loop ("port"), no GIL on the
           worker side. */
        struct afr_done { unsigned long long token; long result; char *buf; };
        struct afr_port;
        struct afr_port *afr_port_new(void);
        int afr_port_fd(struct afr_port *port);
        void afr_port_release(struct afr_port *port);
        int afr_submit(struct afr_port *port, int fd, size_t len, long long offset,
                       unsigned long long token);
        int afr_submit_into(struct afr_port *port, int fd, char *buf, size_t len,
                            long long offset, unsigned long long token);
        long afr_port_pending(struct afr_port *port);
        int afr_port_reap(struct afr_port *port, struct afr_done *out, int max);
        void afr_free(char *buf);
        void afr_pool_configure(int max_threads, long max_in_flight);
        void afr_pool_stats(unsigned long long *submitted, long *in_flight, int *threads);
        """,
    ),
    (
        "afr_readahead.c",  # readahead jobs on the native pool's threads
        """
        int afr_submit_readahead(int fd, long long offset, size_t len, long stream);
        int afr_submit_bring_in(struct afr_port *port, int fd, size_t len,
                                long long offset, unsigned long long token);
        void afr_readahead_configure(long max_jobs, long long max_bytes);
        void afr_readahead_stats(unsigned long long *submitted,
                                 unsigned long long *submitted_bytes,
                                 unsigned long long *reopened,
                                 long *jobs, long long *bytes);
        """,
    ),
    (
        "afr_read_many.c",  # read_many's inline pass as a CPython function
        """
        /* read_ranges_nowait(...) as a CPython function object (NULL on PyPy),
           handed out as afr_read_nowait_function's is. */
        void *afr_read_ranges_function(void);
        /* plain_ranges(ranges) -> bool, the same way: read_many's checks. */
        void *afr_plain_ranges_function(void);
        """,
    ),
    (
        "afr_write.c",  # the writer's buffer fields and write() in C
        """
        /* The WriterCore type object (NULL on PyPy or if it cannot be made),
           handed out as afr_read_nowait_function's object is. */
        void *afr_writer_core_type(void);
        """,
    ),
    (
        "afr_open.c",  # opens that cannot block (small-files, issue 12)
        """
        /* openat2(RESOLVE_CACHED) read-only + statx(AT_STATX_DONT_SYNC):
           fd or -errno; out = {st_mode, st_size, st_dev, st_ino}. */
        int afr_open_cached(const char *path, long long *out);
        /* fstatfs(2) f_type or -errno (blocking: pool side). */
        long long afr_fstatfs_type(int fd);

        static const int AFR_HAS_OPENAT2;
        """,
    ),
)

ffibuilder = FFI()
ffibuilder.cdef("".join(cdef for _, cdef in SOURCES))
ffibuilder.set_source(
    "aiofastread._native_cffi",
    "".join(f'#include "{name}"\n' for name, _ in SOURCES),
    include_dirs=[str(HERE)],
    depends=[str(HERE / name) for name, _ in SOURCES],
    # A missing compiler must not fail `pip install`: setuptools turns a
    # failed optional extension into a warning.
    libraries=["pthread"],
    # The stable ABI of CPython 3.10 (cffi alone would pick the oldest one):
    # PyType_FromSpec with am_send, METH_FASTCALL, PyMemberDef (afr_hit.c).
    define_macros=[("Py_LIMITED_API", "0x030A0000")],
    optional=True,
)

if __name__ == "__main__":
    ffibuilder.compile(verbose=True)
