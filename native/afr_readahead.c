/* Readahead jobs: bring a range of a file into the page cache ahead of a
 * reader that streams it, on the native pool's threads (afr_pool.c).
 *
 * A stream read goes inline only while the pages after it are cached
 * (_read._cached); nothing else brings them in, so without these jobs a
 * stream pays a pool round trip per read. A job works on its own dup of the
 * caller's fd (closed here), so a close or a reuse of the caller's number
 * can never misdirect it. It wakes no loop: the loop finds the pages with
 * its own cachestat. Bounded process-wide (jobs and bytes in flight,
 * afr_readahead_configure); the per-file bounds are Python's (_stream).
 *
 * A job: cachestat (all resident: done, no I/O), posix_fadvise(WILLNEED)
 * (readahead(2)'s path in the kernel: the whole range submitted at once, in
 * requests as large as the device takes), then
 * pread through the range into a scratch buffer. The pread waits for the
 * pages to be read: cachestat counts a page still under I/O as cached, and a
 * NOWAIT read of it answers EAGAIN, so a job counts as in flight (and its
 * bytes against the bound) until its pages are really there. It also reads
 * the range where the advice is refused (EINVAL: not a page-cache file). */
#include <fcntl.h>

/* Reads of the wait-through pass: 128 KiB, the largest request a loop device
 * takes at once here (max_sectors_kb 128). */
#define AFR_RA_PIECE (128 * 1024)

static struct {
    long jobs, max_jobs;            /* in flight (queued or running) */
    long long bytes, max_bytes;
    unsigned long long submitted, submitted_bytes;
    int atfork_set;
} afr_ra = {0, 8, 0, 64LL << 20, 0, 0, 0}; /* under afr_pool.lock */

static void afr_ra_after_fork_child(void)
{
    /* The parent's jobs do not run here (afr_after_fork_child). */
    afr_ra.jobs = 0;
    afr_ra.bytes = 0;
}

/* WILLNEED over the job's range, ra_piece bytes at a time on ra_piece
 * boundaries. The kernel (force_page_cache_ra) reads an advised range in
 * 2 MiB steps, each split into requests of the device's max_sectors_kb: a
 * 2.5 MiB range on a loop device (1280 KiB requests) went out as 1280 +
 * 768 + 512 KiB, 0.83 MiB a request where its own readahead makes 1.25 MiB.
 * On a device limited in IOPS that halved a cold stream's throughput (4
 * streams on the 300-IOPS slow device: 185-260 MB/s against 360-425 without
 * readahead; with pieces of 1280 KiB 363 against 414, docs/streams.md). */
static void afr_readahead_advise(struct afr_job *job)
{
    long long at = job->offset, end = job->offset + (long long)job->len;
    long long piece = (long long)job->ra_piece;
    while (at < end) {
        long long n = piece > 0 ? piece - at % piece : end - at;
        if (n > end - at)
            n = end - at;
        (void)posix_fadvise(job->fd, at, (off_t)n, POSIX_FADV_WILLNEED);
        at += n;
    }
}

/* The worker side of a readahead job: the job is ours to free. */
static void afr_readahead_run(struct afr_job *job)
{
    unsigned long long cached = 0, pages = 0;
    int resident = afr_cachestat(job->fd, job->offset, (long long)job->len, &cached, &pages) == 0
                   && cached >= pages;
    if (!resident) {
        char *buf;
        afr_readahead_advise(job);
        buf = malloc(AFR_RA_PIECE);
        if (buf != NULL) {
            size_t done = 0;
            while (done < job->len) {
                size_t piece = job->len - done < AFR_RA_PIECE ? job->len - done : AFR_RA_PIECE;
                ssize_t n = pread(job->fd, buf, piece, job->offset + (long long)done);
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
    pthread_mutex_unlock(&afr_pool.lock);
    free(job);
}

/* Queue a readahead of len bytes at offset of fd, advised piece bytes at a
 * time (0: at once): 0, or -EAGAIN over the
 * process-wide bounds (or with no thread to run it), -errno when the fd
 * cannot be duplicated. Never blocks; nothing comes back to a loop. */
static int afr_submit_readahead(int fd, long long offset, size_t len, size_t piece)
{
    struct afr_job *job;
    int rc;
    pthread_mutex_lock(&afr_pool.lock);
    if (!afr_ra.atfork_set) {
        pthread_atfork(NULL, NULL, afr_ra_after_fork_child);
        afr_ra.atfork_set = 1;
    }
    if (afr_ra.jobs >= afr_ra.max_jobs || afr_ra.bytes + (long long)len > afr_ra.max_bytes) {
        pthread_mutex_unlock(&afr_pool.lock);
        return -EAGAIN;
    }
    afr_ra.jobs++;
    afr_ra.bytes += (long long)len;
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
        pthread_mutex_unlock(&afr_pool.lock);
        return rc;
    }
    job->readahead = 1;
    job->ra_piece = piece;
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
        afr_ra.max_jobs = max_jobs;
    if (max_bytes > 0)
        afr_ra.max_bytes = max_bytes;
    pthread_mutex_unlock(&afr_pool.lock);
}

/* Jobs and bytes submitted ever; jobs and bytes in flight now. */
static void afr_readahead_stats(unsigned long long *submitted, unsigned long long *submitted_bytes,
                                long *jobs, long long *bytes)
{
    pthread_mutex_lock(&afr_pool.lock);
    *submitted = afr_ra.submitted;
    *submitted_bytes = afr_ra.submitted_bytes;
    *jobs = afr_ra.jobs;
    *bytes = afr_ra.bytes;
    pthread_mutex_unlock(&afr_pool.lock);
}
