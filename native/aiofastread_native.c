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


/* ------------------------------------------------------------------------
 * The native miss pool: blocking reads on C threads that never take the GIL.
 *
 * A miss served by a Python thread takes the GIL several times (wake-up,
 * after pread, to resolve the future and to write the loop's self-pipe).
 * Next to a loop busy with inline hits, each of those waits up to CPython's
 * 5 ms switch interval, and the handoffs stall the loop in turn
 * (docs/benchmarks.md, "Misses behind a saturated loop"). Here a worker
 * reads into a buffer of its own and queues the result on its loop's port;
 * the loop learns of it from the port's eventfd (add_reader) and takes the
 * bytes in one call. No Python object crosses a thread.
 *
 * Lifetimes: a job reads from a dup of the caller's fd (closed by the
 * worker), so closing or reusing the caller's descriptor number can never
 * misdirect it. A port is freed when Python has released it and no job of
 * it is left; a job whose port was released frees its buffer itself. After
 * fork() the child starts with an empty pool and leaves the parent's ports
 * alone (their locks may be held by threads that do not exist there). */
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/eventfd.h>

struct afr_done {
    unsigned long long token;
    long result;   /* bytes read (fewer only at EOF) or -errno */
    char *buf;     /* malloc'd; the reaper frees it with afr_free */
};

struct afr_port;

struct afr_job {
    struct afr_job *next;
    struct afr_port *port;
    int fd;
    size_t len;
    long long offset;
    char *buf;
    long result;
    unsigned long long token;
};

struct afr_port {
    pthread_mutex_t lock;
    struct afr_job *done_head, *done_tail;
    int efd;
    long refs;       /* Python's, plus one per job not yet reaped */
    int released;
    unsigned long generation;
};

static struct {
    pthread_mutex_t lock;
    pthread_cond_t wake;
    struct afr_job *head, *tail;
    int threads, idle, wakeups, max_threads;
    long in_flight, max_in_flight; /* jobs submitted and not yet taken back */
    unsigned long long submitted;
    unsigned long generation;
    int atfork_set;
} afr_pool = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, NULL, NULL,
              0, 0, 0, 16, 0, 1024, 0, 0, 0};

static void afr_untake(long jobs)
{
    pthread_mutex_lock(&afr_pool.lock);
    afr_pool.in_flight -= jobs;
    pthread_mutex_unlock(&afr_pool.lock);
}

static void afr_port_destroy(struct afr_port *port)
{
    close(port->efd);
    pthread_mutex_destroy(&port->lock);
    free(port);
}

/* Hand a finished job to its port (worker side). */
static void afr_complete(struct afr_job *job)
{
    struct afr_port *port = job->port;
    int was_empty, destroy = 0;
    pthread_mutex_lock(&port->lock);
    if (port->released) {
        free(job->buf);
        free(job);
        destroy = --port->refs == 0;
        pthread_mutex_unlock(&port->lock);
        afr_untake(1);
        if (destroy)
            afr_port_destroy(port);
        return;
    }
    job->next = NULL;
    was_empty = port->done_head == NULL;
    if (was_empty)
        port->done_head = job;
    else
        port->done_tail->next = job;
    port->done_tail = job;
    if (was_empty) {
        /* One wake-up per batch: the reaper empties the list. */
        uint64_t one = 1;
        ssize_t w = write(port->efd, &one, sizeof one);
        (void)w; /* EAGAIN only at a counter of 2^64-2: a wake-up is pending */
    }
    pthread_mutex_unlock(&port->lock);
}

static void afr_read_job(struct afr_job *job)
{
    size_t got = 0;
    while (got < job->len) {
        ssize_t n = pread(job->fd, job->buf + got, job->len - got, job->offset + (long long)got);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            job->result = -errno;
            return;
        }
        if (n == 0)
            break; /* EOF */
        got += (size_t)n;
    }
    job->result = (long)got;
}

static void *afr_worker(void *arg)
{
    (void)arg;
    pthread_mutex_lock(&afr_pool.lock);
    for (;;) {
        struct afr_job *job = afr_pool.head;
        if (job == NULL) {
            if (afr_pool.threads > afr_pool.max_threads)
                break; /* configure() lowered the thread count */
            afr_pool.idle++;
            while (afr_pool.wakeups == 0)
                pthread_cond_wait(&afr_pool.wake, &afr_pool.lock);
            afr_pool.wakeups--;
            continue;
        }
        afr_pool.head = job->next;
        if (afr_pool.head == NULL)
            afr_pool.tail = NULL;
        pthread_mutex_unlock(&afr_pool.lock);
        afr_read_job(job);
        close(job->fd);
        afr_complete(job);
        pthread_mutex_lock(&afr_pool.lock);
    }
    afr_pool.threads--;
    pthread_mutex_unlock(&afr_pool.lock);
    return NULL;
}

static void afr_after_fork_child(void)
{
    /* The child has none of the threads; their jobs and ports are the
     * parent's. Start over (what was queued is abandoned: its memory is
     * the parent's copy, not worth the risk of touching). */
    pthread_mutex_init(&afr_pool.lock, NULL);
    pthread_cond_init(&afr_pool.wake, NULL);
    afr_pool.head = afr_pool.tail = NULL;
    afr_pool.threads = afr_pool.idle = afr_pool.wakeups = 0;
    afr_pool.in_flight = 0;
    afr_pool.generation++;
}

/* Start a worker with every signal blocked: signals are for the thread
 * that runs Python's handlers. Called with the pool lock held. */
static int afr_spawn_locked(void)
{
    pthread_t thread;
    pthread_attr_t attr;
    sigset_t all, old;
    int rc;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    /* Workers call pread and little else: 64 KiB of stack is plenty. */
    pthread_attr_setstacksize(&attr, 64 * 1024);
    rc = pthread_create(&thread, &attr, afr_worker, NULL);
    pthread_attr_destroy(&attr);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (rc == 0)
        afr_pool.threads++;
    return rc;
}

static struct afr_port *afr_port_new(void)
{
    struct afr_port *port = calloc(1, sizeof *port);
    if (port == NULL)
        return NULL;
    port->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (port->efd < 0) {
        int saved = errno;
        free(port);
        errno = saved;
        return NULL;
    }
    pthread_mutex_init(&port->lock, NULL);
    port->refs = 1;
    pthread_mutex_lock(&afr_pool.lock);
    if (!afr_pool.atfork_set) {
        pthread_atfork(NULL, NULL, afr_after_fork_child);
        afr_pool.atfork_set = 1;
    }
    port->generation = afr_pool.generation;
    pthread_mutex_unlock(&afr_pool.lock);
    return port;
}

static int afr_port_fd(struct afr_port *port)
{
    return port->efd;
}

/* Python is done with the port (it has removed the reader). */
static void afr_port_release(struct afr_port *port)
{
    struct afr_job *job, *next;
    int destroy;
    long dropped = 0;
    if (port->generation != afr_pool.generation)
        return; /* a forked parent's port: its lock may be held forever */
    pthread_mutex_lock(&port->lock);
    port->released = 1;
    for (job = port->done_head; job != NULL; job = next) {
        next = job->next;
        free(job->buf);
        free(job);
        port->refs--;
        dropped++;
    }
    port->done_head = port->done_tail = NULL;
    destroy = --port->refs == 0;
    pthread_mutex_unlock(&port->lock);
    if (dropped)
        afr_untake(dropped);
    if (destroy)
        afr_port_destroy(port);
}

/* Queue a read of len bytes at offset; its result comes back through the
 * port under token. 0, or -errno: -EAGAIN when max_in_flight jobs hold a
 * slot (Python keeps the real limit; this one only bites for reads of
 * closed loops still running), -EMFILE etc. when the fd cannot be
 * duplicated. Never blocks.
 * A job holds its slot until the loop takes its result (or its port is
 * released): finished results waiting for a busy loop count, as their
 * buffers do. */
static int afr_submit(struct afr_port *port, int fd, size_t len, long long offset,
                      unsigned long long token)
{
    struct afr_job *job;
    int saved;
    pthread_mutex_lock(&afr_pool.lock);
    if (afr_pool.in_flight >= afr_pool.max_in_flight) {
        pthread_mutex_unlock(&afr_pool.lock);
        return -EAGAIN;
    }
    afr_pool.in_flight++;
    pthread_mutex_unlock(&afr_pool.lock);

    job = calloc(1, sizeof *job);
    if (job == NULL) {
        saved = ENOMEM;
        goto undo;
    }
    job->buf = malloc(len ? len : 1);
    if (job->buf == NULL) {
        saved = ENOMEM;
        goto undo;
    }
    job->fd = fcntl(fd, F_DUPFD_CLOEXEC, 0);
    if (job->fd < 0) {
        saved = errno;
        goto undo;
    }
    job->port = port;
    job->len = len;
    job->offset = offset;
    job->token = token;

    pthread_mutex_lock(&port->lock);
    port->refs++;
    pthread_mutex_unlock(&port->lock);

    pthread_mutex_lock(&afr_pool.lock);
    if (afr_pool.tail == NULL)
        afr_pool.head = job;
    else
        afr_pool.tail->next = job;
    afr_pool.tail = job;
    afr_pool.submitted++;
    if (afr_pool.idle > 0) {
        afr_pool.idle--;
        afr_pool.wakeups++;
        pthread_cond_signal(&afr_pool.wake);
    } else if (afr_pool.threads < afr_pool.max_threads && afr_spawn_locked() != 0
               && afr_pool.threads == 0) {
        /* No thread at all to run it: take the job back (it is the tail,
         * and the only one, as nothing could have run the others). */
        afr_pool.head = afr_pool.tail = NULL;
        afr_pool.submitted--;
        afr_pool.in_flight--;
        pthread_mutex_unlock(&afr_pool.lock);
        pthread_mutex_lock(&port->lock);
        port->refs--;
        pthread_mutex_unlock(&port->lock);
        close(job->fd);
        free(job->buf);
        free(job);
        return -EAGAIN;
    }
    pthread_mutex_unlock(&afr_pool.lock);
    return 0;

undo:
    if (job != NULL) {
        free(job->buf);
        free(job);
    }
    pthread_mutex_lock(&afr_pool.lock);
    afr_pool.in_flight--;
    pthread_mutex_unlock(&afr_pool.lock);
    return -saved;
}

/* Take up to max finished jobs (loop side, after the eventfd fired). */
static int afr_port_reap(struct afr_port *port, struct afr_done *out, int max)
{
    uint64_t count;
    int n = 0;
    ssize_t r = read(port->efd, &count, sizeof count); /* reset; EAGAIN if none */
    (void)r;
    pthread_mutex_lock(&port->lock);
    while (n < max && port->done_head != NULL) {
        struct afr_job *job = port->done_head;
        port->done_head = job->next;
        out[n].token = job->token;
        out[n].result = job->result;
        out[n].buf = job->buf;
        free(job);
        n++;
    }
    if (port->done_head == NULL)
        port->done_tail = NULL;
    port->refs -= n;
    pthread_mutex_unlock(&port->lock);
    if (n)
        afr_untake(n);
    return n;
}

static void afr_free(char *buf)
{
    free(buf);
}

static void afr_pool_configure(int max_threads, long max_in_flight)
{
    pthread_mutex_lock(&afr_pool.lock);
    if (max_threads > 0)
        afr_pool.max_threads = max_threads;
    if (max_in_flight > 0)
        afr_pool.max_in_flight = max_in_flight;
    /* Idle threads above the new count see it when woken. */
    if (afr_pool.threads > afr_pool.max_threads && afr_pool.idle > 0) {
        afr_pool.wakeups += afr_pool.idle;
        afr_pool.idle = 0;
        pthread_cond_broadcast(&afr_pool.wake);
    }
    pthread_mutex_unlock(&afr_pool.lock);
}

/* submitted, in flight (queued, running or not yet taken back), threads. */
static void afr_pool_stats(unsigned long long *submitted, long *in_flight, int *threads)
{
    pthread_mutex_lock(&afr_pool.lock);
    *submitted = afr_pool.submitted;
    *in_flight = afr_pool.in_flight;
    *threads = afr_pool.threads;
    pthread_mutex_unlock(&afr_pool.lock);
}
