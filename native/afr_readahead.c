/* Readahead jobs: bring a range of a file into the page cache ahead of a
 * reader that streams it, on the native pool's threads (afr_pool.c).
 *
 * A stream read goes inline only while the pages after it are cached
 * (_read._cached); nothing else brings them in, so without these jobs a
 * stream pays a pool round trip per read. A job wakes no loop: the loop
 * finds the pages with its own cachestat. Bounded process-wide (jobs and
 * bytes in flight, afr_readahead_configure) and one job per stream at a
 * time; the per-file bounds are Python's (_stream).
 *
 * A job reads its range through (sendfile(2) to /dev/null: no copy, no
 * buffer) on an open file description of its own: the kernel's readahead then sees one sequential
 * reader per stream and brings the pages in as it does for any stream, in
 * large folios and requests as large as the device takes. What it replaced,
 * and why (docs/streams.md, "Why a cold stream was slower"):
 *   - posix_fadvise(WILLNEED) / readahead(2) read into single pages: a loop
 *     device (128 segments of at most 64 KiB) then gets 512 KiB requests
 *     where the kernel's own readahead makes 1280 KiB; on the 300-IOPS slow
 *     device, 2.5x the requests for the same bytes.
 *   - several jobs of one stream at once, or a job on a dup of the reader's
 *     descriptor: the kernel takes interleaved reads for random ones (single
 *     pages again) and leaves holes that split the next requests.
 * So a job reads on a reopened description (/proc/self/fd/N; the dup where
 * that fails), first reads the byte before its range (when cached) so that
 * the kernel sees it continue a sequential read, and a stream's next job
 * waits until this one is done (-EBUSY to the caller, asked again later).
 * The read-through also makes a job count as in flight (and its bytes
 * against the bound) until its pages are really there. */
#include <fcntl.h>
#include <stdio.h>
#include <sys/sendfile.h>

/* Steps of the read-through: 256 KiB. The kernel's readahead runs up to a
 * window (read_ahead_kb) ahead of them: the request size comes from it, not
 * from this. */
#define AFR_RA_READ (256 * 1024)
/* Process-wide slots for jobs in flight: the most afr_readahead_configure
 * allows (8 by default: half the pool's 16 threads). */
#define AFR_RA_SLOTS 64

static struct {
    long jobs, max_jobs;            /* in flight (queued or running) */
    long long bytes, max_bytes;
    unsigned long long submitted, submitted_bytes;
    unsigned long long reopened;    /* jobs that read on a description of their own */
    long streams[AFR_RA_SLOTS];     /* the stream of each job in flight (0: free) */
    int atfork_set;
} afr_ra = {0, 8, 0, 64LL << 20, 0, 0, 0, {0}, 0}; /* under afr_pool.lock */

static void afr_ra_after_fork_child(void)
{
    /* The parent's jobs do not run here (afr_after_fork_child). */
    afr_ra.jobs = 0;
    afr_ra.bytes = 0;
    memset(afr_ra.streams, 0, sizeof afr_ra.streams);
}

/* A description of the job's own for its dup (closed here), or the dup
 * itself when the file cannot be reopened (no /proc, permissions). */
static int afr_readahead_own(int dup_fd, int *reopened)
{
    char path[40];
    int own;
    snprintf(path, sizeof path, "/proc/self/fd/%d", dup_fd);
    own = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
    *reopened = own >= 0;
    if (own < 0)
        return dup_fd;
    close(dup_fd);
    return own;
}

/* Read [offset, offset + len) of fd through, waiting for every page:
 * the bytes read (fewer only at EOF) or -errno. */
static long afr_read_through(int fd, long long offset, size_t len)
{
    /* Where the bytes go: /dev/null, through sendfile(2), so the pages are
     * read and waited for without a copy or a buffer; a scratch buffer
     * where there is no /dev/null. Opened per job (a job is megabytes): no
     * descriptor of ours stays open between jobs. */
    int sink = open("/dev/null", O_WRONLY | O_CLOEXEC);
    long result;
    char *buf = NULL;
    size_t done = 0;
    unsigned long long cached = 0, pages = 0;
    char byte;
    /* The byte before (the reader's, or an earlier job's: cached): reading
     * it makes the range's first read a sequential one to the kernel. NOWAIT:
     * a page still being read by another job is not waited for (EAGAIN at
     * once, no I/O: it is in the cache). */
    if (offset > 0 && afr_cachestat(fd, offset - 1, 1, &cached, &pages) == 0 && cached >= pages)
        (void)afr_pread_flags(fd, &byte, 1, offset - 1, RWF_NOWAIT);
    if (sink < 0 && (buf = malloc(AFR_RA_READ)) == NULL)
        return -ENOMEM;
    result = 0;
    while (done < len) {
        size_t want = len - done < AFR_RA_READ ? len - done : AFR_RA_READ;
        off_t at = (off_t)(offset + (long long)done);
        ssize_t n = sink >= 0 ? sendfile(sink, fd, &at, want) : pread(fd, buf, want, at);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && sink >= 0 && (errno == EINVAL || errno == ENOSYS) && done == 0) {
            /* No splice from this file: read it into a buffer instead. */
            close(sink);
            sink = -1;
            if ((buf = malloc(AFR_RA_READ)) == NULL) {
                result = -ENOMEM;
                break;
            }
            continue;
        }
        if (n < 0) {
            result = -errno;
            break;
        }
        if (n == 0)
            break; /* EOF */
        done += (size_t)n;
    }
    if (sink >= 0)
        close(sink);
    free(buf);
    return result < 0 ? result : (long)done;
}

/* The worker side of a readahead job: the job is ours to free, or, for a
 * bring-in (a port to answer), to complete with the bytes brought in. */
static void afr_readahead_run(struct afr_job *job)
{
    unsigned long long cached = 0, pages = 0;
    int reopened = 0, i;
    int resident = job->port == NULL
                   && afr_cachestat(job->fd, job->offset, (long long)job->len, &cached, &pages) == 0
                   && cached >= pages;
    if (!resident) {
        job->fd = afr_readahead_own(job->fd, &reopened);
        job->result = afr_read_through(job->fd, job->offset, job->len);
    }
    close(job->fd);
    pthread_mutex_lock(&afr_pool.lock);
    afr_ra.reopened += (unsigned long long)reopened;
    if (job->port == NULL) {
        afr_ra.jobs--;
        afr_ra.bytes -= (long long)job->len;
        for (i = 0; i < AFR_RA_SLOTS; i++)
            if (afr_ra.streams[i] == job->ra_stream) {
                afr_ra.streams[i] = 0;
                break;
            }
    }
    pthread_mutex_unlock(&afr_pool.lock);
    if (job->port != NULL)
        afr_complete(job);
    else
        free(job);
}

/* Queue a readahead job (pool lock held): 0 or -EAGAIN, as
 * afr_enqueue_locked; counted as a readahead job, not as a miss read. */
static int afr_ra_enqueue_locked(struct afr_job *job)
{
    int rc = afr_enqueue_locked(job);
    if (rc == 0) {
        afr_pool.submitted--; /* afr_pool_stats counts miss reads */
        afr_ra.submitted++;
        afr_ra.submitted_bytes += job->len;
    }
    return rc;
}

/* Queue a readahead of len bytes at offset of fd for the stream numbered
 * stream (> 0): 0; -EBUSY while a job of that stream is in flight; -EAGAIN
 * over the process-wide bounds (or with no thread to run it); -errno when
 * the fd cannot be duplicated. Never blocks; nothing comes back to a loop. */
static int afr_submit_readahead(int fd, long long offset, size_t len, long stream)
{
    struct afr_job *job;
    int rc, slot = -1, i;
    pthread_mutex_lock(&afr_pool.lock);
    if (!afr_ra.atfork_set) {
        pthread_atfork(NULL, NULL, afr_ra_after_fork_child);
        afr_ra.atfork_set = 1;
    }
    for (i = 0; i < AFR_RA_SLOTS; i++) {
        if (afr_ra.streams[i] == stream) {
            pthread_mutex_unlock(&afr_pool.lock);
            return -EBUSY;
        }
        if (afr_ra.streams[i] == 0 && slot < 0)
            slot = i;
    }
    if (stream <= 0 || slot < 0 || afr_ra.jobs >= afr_ra.max_jobs
        || afr_ra.bytes + (long long)len > afr_ra.max_bytes) {
        pthread_mutex_unlock(&afr_pool.lock);
        return -EAGAIN;
    }
    afr_ra.jobs++;
    afr_ra.bytes += (long long)len;
    afr_ra.streams[slot] = stream;
    pthread_mutex_unlock(&afr_pool.lock);

    job = calloc(1, sizeof *job);
    if (job != NULL)
        job->fd = fcntl(fd, F_DUPFD_CLOEXEC, 0);
    if (job == NULL || job->fd < 0) {
        rc = job == NULL ? -ENOMEM : -errno;
        free(job);
        pthread_mutex_lock(&afr_pool.lock);
        afr_ra.jobs--;
        afr_ra.bytes -= (long long)len;
        afr_ra.streams[slot] = 0;
        pthread_mutex_unlock(&afr_pool.lock);
        return rc;
    }
    job->readahead = 1;
    job->ra_stream = stream;
    job->offset = offset;
    job->len = len;
    pthread_mutex_lock(&afr_pool.lock);
    rc = afr_ra_enqueue_locked(job);
    if (rc < 0) {
        afr_ra.jobs--;
        afr_ra.bytes -= (long long)len;
        afr_ra.streams[slot] = 0;
    }
    pthread_mutex_unlock(&afr_pool.lock);
    if (rc < 0) {
        close(job->fd);
        free(job);
    }
    return rc;
}

static void afr_readahead_configure(long max_jobs, long long max_bytes)
{
    pthread_mutex_lock(&afr_pool.lock);
    if (max_jobs > 0)
        afr_ra.max_jobs = max_jobs < AFR_RA_SLOTS ? max_jobs : AFR_RA_SLOTS;
    if (max_bytes > 0)
        afr_ra.max_bytes = max_bytes;
    pthread_mutex_unlock(&afr_pool.lock);
}

/* Jobs and bytes submitted ever, jobs that read on a description of their
 * own ever; jobs and bytes in flight now. */
static void afr_readahead_stats(unsigned long long *submitted, unsigned long long *submitted_bytes,
                                unsigned long long *reopened, long *jobs, long long *bytes)
{
    pthread_mutex_lock(&afr_pool.lock);
    *submitted = afr_ra.submitted;
    *submitted_bytes = afr_ra.submitted_bytes;
    *reopened = afr_ra.reopened;
    *jobs = afr_ra.jobs;
    *bytes = afr_ra.bytes;
    pthread_mutex_unlock(&afr_pool.lock);
}

/* Bring len bytes at offset of fd into the page cache for a caller that
 * waits (aiofastread.sendfile's cold ranges): the same read-through, on a
 * C thread, answered through port under token with the bytes brought in
 * (fewer only at EOF) or -errno. Holds a pool slot as a miss read does, not
 * the readahead bounds (its caller waits for it). 0 or -errno. Never
 * blocks. The steps are afr_submit_job's (afr_pool.c), but for the job's
 * kind, which must be set before a worker can take it. */
static int afr_submit_bring_in(struct afr_port *port, int fd, size_t len, long long offset,
                               unsigned long long token)
{
    struct afr_job *job;
    int rc = afr_take_slot();
    if (rc < 0)
        return rc;
    job = afr_job_new(port, fd, NULL, 1, len, offset, token);
    if (job == NULL) {
        rc = -errno;
        afr_untake(1);
        return rc;
    }
    job->readahead = 1;
    afr_port_ref(port, 1); /* before a worker can complete it */
    pthread_mutex_lock(&afr_pool.lock);
    rc = afr_ra_enqueue_locked(job);
    pthread_mutex_unlock(&afr_pool.lock);
    if (rc < 0) {
        afr_port_ref(port, -1);
        afr_untake(1);
        close(job->fd);
        afr_job_free(job);
    }
    return rc;
}
