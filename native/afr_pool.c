/* The native miss pool: blocking reads on C threads that never take the GIL.
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
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <semaphore.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/eventfd.h>
#include <unistd.h>

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
    int borrowed; /* buf is the caller's (afr_submit_into): never freed here */
    int readahead; /* a readahead job (afr_readahead.c): no buffer, no port */
    long ra_stream; /* the stream it reads ahead of (afr_readahead.c) */
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
    /* Idle workers sleep on a semaphore, not a condition variable: glibc's
     * pthread_cond_signal (before 2.41) can wait for earlier waiters that
     * were woken but have no CPU yet, and the loop thread signals (traced:
     * 1.5-3.5 ms loop stalls in pthread_cond_signal on a loaded machine,
     * docs/streams.md). sem_post never waits. Initialised at the first
     * spawn (a worker exists before anyone posts). */
    sem_t wake;
    int wake_ready;
    struct afr_job *head, *tail;
    int threads, idle, max_threads;
    long in_flight, max_in_flight; /* jobs submitted and not yet taken back */
    unsigned long long submitted;
    unsigned long generation;
    int atfork_set;
} afr_pool = {.lock = PTHREAD_MUTEX_INITIALIZER, .max_threads = 16, .max_in_flight = 1024};

static void afr_untake(long jobs)
{
    pthread_mutex_lock(&afr_pool.lock);
    afr_pool.in_flight -= jobs;
    pthread_mutex_unlock(&afr_pool.lock);
}

static void afr_job_free(struct afr_job *job)
{
    if (!job->borrowed)
        free(job->buf);
    free(job);
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
    uint64_t one = 1;
    ssize_t w;
    pthread_mutex_lock(&port->lock);
    if (port->released) {
        afr_job_free(job);
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
        /* One wake-up per batch: the reaper empties the list. Written under
         * the lock: after it, the loop may reap the job and free the port. */
        w = write(port->efd, &one, sizeof one);
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

static void afr_readahead_run(struct afr_job *job); /* afr_readahead.c */

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
            pthread_mutex_unlock(&afr_pool.lock);
            while (sem_wait(&afr_pool.wake) != 0 && errno == EINTR)
                ; /* the poster took us off idle */
            pthread_mutex_lock(&afr_pool.lock);
            continue;
        }
        afr_pool.head = job->next;
        if (afr_pool.head == NULL)
            afr_pool.tail = NULL;
        pthread_mutex_unlock(&afr_pool.lock);
        if (job->readahead) {
            afr_readahead_run(job);
            pthread_mutex_lock(&afr_pool.lock);
            continue;
        }
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
    if (afr_pool.wake_ready)
        sem_init(&afr_pool.wake, 0, 0);
    afr_pool.head = afr_pool.tail = NULL;
    afr_pool.threads = afr_pool.idle = 0;
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
    if (!afr_pool.wake_ready) {
        if (sem_init(&afr_pool.wake, 0, 0) != 0)
            return errno;
        afr_pool.wake_ready = 1;
    }
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
        afr_job_free(job);
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

/* Take one of the C pool's slots: 0, or -EAGAIN when max_in_flight jobs
 * hold one (Python keeps the real limit; this one only bites for reads of
 * closed loops still running). */
static int afr_take_slot(void)
{
    int rc = 0;
    pthread_mutex_lock(&afr_pool.lock);
    if (afr_pool.in_flight >= afr_pool.max_in_flight)
        rc = -EAGAIN;
    else
        afr_pool.in_flight++;
    pthread_mutex_unlock(&afr_pool.lock);
    return rc;
}

static void afr_port_ref(struct afr_port *port, long delta)
{
    pthread_mutex_lock(&port->lock);
    port->refs += delta;
    pthread_mutex_unlock(&port->lock);
}

/* A job reading len bytes at offset from its own dup of fd; NULL with
 * errno set (ENOMEM, or EMFILE etc. when the fd cannot be duplicated). */
static struct afr_job *afr_job_new(struct afr_port *port, int fd, char *buf, int borrowed,
                                   size_t len, long long offset, unsigned long long token)
{
    int saved;
    struct afr_job *job = calloc(1, sizeof *job);
    if (job == NULL) {
        errno = ENOMEM;
        return NULL;
    }
    job->borrowed = borrowed; /* the caller's memory: never freed here */
    job->buf = borrowed ? buf : malloc(len ? len : 1);
    if (job->buf == NULL && !borrowed) {
        free(job);
        errno = ENOMEM;
        return NULL;
    }
    job->fd = fcntl(fd, F_DUPFD_CLOEXEC, 0);
    if (job->fd < 0) {
        saved = errno;
        afr_job_free(job);
        errno = saved;
        return NULL;
    }
    job->port = port;
    job->len = len;
    job->offset = offset;
    job->token = token;
    return job;
}

/* Queue the job and wake or start a worker (pool lock held): 0, or -EAGAIN
 * when no thread exists to run it and none could be started (not queued). */
static int afr_enqueue_locked(struct afr_job *job)
{
    if (afr_pool.idle == 0 && afr_pool.threads < afr_pool.max_threads
        && afr_spawn_locked() != 0 && afr_pool.threads == 0)
        return -EAGAIN;
    if (afr_pool.tail == NULL)
        afr_pool.head = job;
    else
        afr_pool.tail->next = job;
    afr_pool.tail = job;
    afr_pool.submitted++;
    if (afr_pool.idle > 0) {
        afr_pool.idle--;
        sem_post(&afr_pool.wake);
    }
    return 0;
}

/* Queue a read of len bytes at offset, into a buffer of its own or (borrowed)
 * into the caller's memory buf (a buffer export Python holds until this
 * job is reaped, or until the C side has finished it when the port was
 * orphaned: no copy on the loop; reaped with buf NULL). Its result comes
 * back through the port under token. 0, or -errno (see afr_take_slot,
 * afr_job_new, afr_enqueue_locked). Never blocks.
 * A job holds its slot until the loop takes its result (or its port is
 * released): finished results waiting for a busy loop count, as their
 * buffers do. */
static int afr_submit_job(struct afr_port *port, int fd, char *buf, int borrowed, size_t len,
                          long long offset, unsigned long long token)
{
    struct afr_job *job;
    int rc = afr_take_slot();
    if (rc < 0)
        return rc;
    job = afr_job_new(port, fd, buf, borrowed, len, offset, token);
    if (job == NULL) {
        rc = -errno;
        afr_untake(1);
        return rc;
    }
    afr_port_ref(port, 1); /* before a worker can complete it */
    pthread_mutex_lock(&afr_pool.lock);
    rc = afr_enqueue_locked(job);
    pthread_mutex_unlock(&afr_pool.lock);
    if (rc < 0) {
        afr_port_ref(port, -1);
        afr_untake(1);
        close(job->fd);
        afr_job_free(job);
    }
    return rc;
}

static int afr_submit(struct afr_port *port, int fd, size_t len, long long offset,
                      unsigned long long token)
{
    return afr_submit_job(port, fd, NULL, 0, len, offset, token);
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
        out[n].buf = job->borrowed ? NULL : job->buf; /* NULL: the caller's */
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

static int afr_submit_into(struct afr_port *port, int fd, char *buf, size_t len,
                           long long offset, unsigned long long token)
{
    return afr_submit_job(port, fd, buf, 1, len, offset, token);
}

/* Jobs of this port finished and not yet reaped (tests: a batch is whole
 * before the loop takes it). */
static long afr_port_pending(struct afr_port *port)
{
    long n = 0;
    struct afr_job *job;
    pthread_mutex_lock(&port->lock);
    for (job = port->done_head; job != NULL; job = job->next)
        n++;
    pthread_mutex_unlock(&port->lock);
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
    for (; afr_pool.threads > afr_pool.max_threads && afr_pool.idle > 0; afr_pool.idle--)
        sem_post(&afr_pool.wake);
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
