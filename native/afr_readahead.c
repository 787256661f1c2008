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
 * A job reads its range through, into a scratch buffer, on an open file
 * description of its own: the kernel's readahead then sees one sequential
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

/* Reads of the read-through: 256 KiB. The kernel's readahead runs up to a
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

/* The worker side of a readahead job: the job is ours to free. */
static void afr_readahead_run(struct afr_job *job)
{
    unsigned long long cached = 0, pages = 0;
    int reopened = 0, i;
    int resident = afr_cachestat(job->fd, job->offset, (long long)job->len, &cached, &pages) == 0
                   && cached >= pages;
    if (!resident) {
        char *buf = malloc(AFR_RA_READ);
        job->fd = afr_readahead_own(job->fd, &reopened);
        if (buf != NULL) {
            size_t done = 0;
            char byte;
            /* The byte before: its page is the reader's, cached; reading it
             * makes the range's first read a sequential one to the kernel. */
            if (job->offset > 0
                && afr_cachestat(job->fd, job->offset - 1, 1, &cached, &pages) == 0
                && cached >= pages)
                (void)pread(job->fd, &byte, 1, job->offset - 1);
            while (done < job->len) {
                size_t want = job->len - done < AFR_RA_READ ? job->len - done : AFR_RA_READ;
                ssize_t n = pread(job->fd, buf, want, job->offset + (long long)done);
                if (n < 0 && errno == EINTR)
                    continue;
                if (n <= 0)
                    break; /* EOF (the file shrank) or an error: the reader will see it */
                done += (size_t)n;
            }
            free(buf);
        }
    }
    close(job->fd);
    pthread_mutex_lock(&afr_pool.lock);
    afr_ra.jobs--;
    afr_ra.bytes -= (long long)job->len;
    afr_ra.reopened += (unsigned long long)reopened;
    for (i = 0; i < AFR_RA_SLOTS; i++)
        if (afr_ra.streams[i] == job->ra_stream) {
            afr_ra.streams[i] = 0;
            break;
        }
    pthread_mutex_unlock(&afr_pool.lock);
    free(job);
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
    rc = afr_enqueue_locked(job);
    if (rc == 0) {
        afr_pool.submitted--; /* not a miss read: afr_pool_stats counts those */
        afr_ra.submitted++;
        afr_ra.submitted_bytes += len;
    } else {
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
