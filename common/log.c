/*
 * log.c — zk_log: one line per call to stderr (foreground) or syslog
 * (daemon). The level is set once at start-up, before threads exist.
 *
 * When stderr is systemd's journal stream (JOURNAL_STREAM names its
 * device and inode, as under a unit with `zkfs mount -f`), each line
 * starts with the syslog priority as "<N>" (sd-daemon(3)) and carries no
 * time of its own: the journal keeps both.
 */
#include "zk_common.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

static enum zk_log_level log_level = ZK_LOG_INFO;
static int log_syslog;
static int log_journal;     /* stderr is the journal: "<prio>" prefixes */

/* Whether stderr is the stream JOURNAL_STREAM ("DEV:INO") names. */
static int stderr_is_journal(void)
{
    const char *js = getenv("JOURNAL_STREAM");
    unsigned long long dev, ino;
    struct stat st;

    return js && sscanf(js, "%llu:%llu", &dev, &ino) == 2 &&
           fstat(STDERR_FILENO, &st) == 0 &&
           (unsigned long long)st.st_dev == dev &&
           (unsigned long long)st.st_ino == ino;
}

void zk_log_setup(enum zk_log_level level, int use_syslog)
{
    log_level = level;
    log_syslog = use_syslog;
    log_journal = !use_syslog && stderr_is_journal();
    if (use_syslog)
        openlog("zkfs", LOG_PID, LOG_DAEMON);
}

int zk_log_enabled(enum zk_log_level level)
{
    return level <= log_level;
}

void zk__log(enum zk_log_level level, const char *fmt, ...)
{
    static const char *const names[] = {"error", "warn", "info", "debug"};
    static const int prio[] = {LOG_ERR, LOG_WARNING, LOG_INFO, LOG_DEBUG};
    char msg[1024];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    if (log_syslog) {
        syslog(prio[level], "%s", msg);
        return;
    }
    if (log_journal) {
        fprintf(stderr, "<%d>%s\n", prio[level], msg);
        return;
    }
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    struct tm tm;
    localtime_r(&ts.tv_sec, &tm);
    fprintf(stderr, "%02d:%02d:%02d.%03ld zkfs %s: %s\n", tm.tm_hour,
            tm.tm_min, tm.tm_sec, ts.tv_nsec / 1000000, names[level], msg);
}
