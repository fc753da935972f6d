/*
 * zk_config.h — the ensemble's configuration file (`zkfs mount -c FILE`),
 * in ZooKeeper's zoo.cfg spirit: `key=value` lines, `#` comment lines,
 * blank lines, whitespace around keys and values ignored, keys
 * case-sensitive. See docs/ensemble.md for every key and its default.
 *
 *   dataDir=/var/lib/zkfs        (required unless the caller overrides it)
 *   tickTime=2000                ms, 1..60000
 *   initLimit=10                 ticks, 1..10000
 *   syncLimit=5                  ticks, 1..10000
 *   sessionTimeout=20000         ms, 2*tickTime..20*tickTime
 *                                (default 10*tickTime)
 *   secretFile=/etc/zkfs/secret  required with more than one server
 *   server.1=zk1.example:2888
 *   server.2=[fd00::2]:2888
 *   server.3=10.0.0.3:2888:observer
 *
 * A parsed configuration is plain data (no pointers, no allocation): copy
 * it, keep it, hand it to another thread. It holds the peer secret, so
 * wipe it with zk_config_wipe() when done; nothing here logs the secret.
 *
 * Threads: every function is reentrant and may run on any thread.
 */
#ifndef ZK_CONFIG_H
#define ZK_CONFIG_H

#include <stddef.h>
#include <stdint.h>

#define ZK_CONFIG_SERVERS_MAX   16      /* = ZK_ZAB_MEMBERS_MAX            */
#define ZK_CONFIG_ID_MAX        255     /* server ids are 1..255           */
#define ZK_CONFIG_HOST_MAX      254     /* a DNS name (253) + NUL          */
#define ZK_CONFIG_PATH_MAX      4096    /* dataDir, secretFile + NUL       */
#define ZK_CONFIG_SECRET_MIN    16      /* bytes of a usable secret        */
#define ZK_CONFIG_SECRET_MAX    1024    /* bytes; a longer file is refused */
#define ZK_CONFIG_FILE_MAX      65536   /* bytes of a config file          */
#define ZK_CONFIG_METRICS_HOST_MAX 64   /* an IP literal + NUL             */

#define ZK_CONFIG_TICK_MS_DEFAULT     200 /* ZooKeeper: 2000; see docs */
#define ZK_CONFIG_INIT_LIMIT_DEFAULT  50 /* 10 s: big snapshots */
#define ZK_CONFIG_SYNC_LIMIT_DEFAULT  5
#define ZK_CONFIG_SESSION_TICKS_DEFAULT 20 /* sessionTimeout = 10*tickTime */

struct zk_config_server {
    uint32_t id;                        /* 1..255, unique                */
    int observer;                       /* non-zero: never votes          */
    uint16_t port;                      /* 1..65535                       */
    char host[ZK_CONFIG_HOST_MAX];      /* name or IP literal, no brackets */
};

struct zk_config {
    uint32_t my_id;                     /* this server; among servers[]   */
    uint32_t tick_time_ms;
    uint32_t init_limit_ticks;
    uint32_t sync_limit_ticks;
    uint32_t session_timeout_ms;
    uint32_t n_servers;                 /* voters and observers, in file order */
    uint32_t n_voters;
    uint32_t quorum;                    /* n_voters / 2 + 1               */
    struct zk_config_server servers[ZK_CONFIG_SERVERS_MAX];
    char data_dir[ZK_CONFIG_PATH_MAX];
    char secret_file[ZK_CONFIG_PATH_MAX]; /* "" if none (one server only) */
    size_t secret_len;                  /* 0 or ZK_CONFIG_SECRET_MIN..MAX  */
    uint8_t secret[ZK_CONFIG_SECRET_MAX]; /* the secretFile's bytes        */
    /* metricsProvider.httpPort/httpHost: the metrics over HTTP (0: off;
     * the host defaults to 127.0.0.1). */
    uint32_t metrics_port;
    char metrics_host[ZK_CONFIG_METRICS_HOST_MAX];
};

/* What the command line may override. A NULL args means "no overrides". */
struct zk_config_args {
    uint32_t id;            /* --id N; 0: read dataDir/myid                */
    const char *data_dir;   /* --data DIR; NULL: the file's dataDir         */
    int standalone_ok;      /* non-zero: a file without server.N lines is
                               a standalone replica (as in ZooKeeper):
                               out->n_servers and my_id are 0 and only
                               dataDir (and secretFile, if named) are
                               checked and used; otherwise an error */
};

/*
 * Reads and checks the configuration file at path (at most
 * ZK_CONFIG_FILE_MAX bytes), then the secret and, when args->id is 0, the
 * myid file. Relative dataDir and secretFile values are taken relative to
 * the directory of path (so a daemon that changed directory still finds
 * them); args->data_dir is used as given.
 *
 * On error a one-line reason naming the file and line ("zoo.cfg:7:
 * duplicate server id 2 (first on line 5)") is written to err[0..errlen)
 * (err may be NULL) and *out is left untouched. Errors: a negative errno
 * if path itself cannot be read (-ENOENT, -EACCES, ...), -EINVAL for
 * anything wrong in the configuration or in the files it names.
 */
int zk_config_load(const char *path, const struct zk_config_args *args,
                   struct zk_config *out, char *err, size_t errlen);

/*
 * The same as zk_config_load() for a file already in memory: text[0..len)
 * (need not be NUL-terminated; a NUL byte in it is an error). name is the
 * file name used in messages and, when it contains a '/', the directory
 * that relative paths are taken from (otherwise the current directory).
 * Reads the secret file and the myid file. Errors: -EINVAL.
 */
int zk_config_parse(const char *name, const char *text, size_t len,
                    const struct zk_config_args *args,
                    struct zk_config *out, char *err, size_t errlen);

/*
 * Reads data_dir/myid: one decimal server id 1..255, optionally surrounded
 * by whitespace (ZooKeeper's format). *id_out is written only on success.
 * Errors (with a message in err): a negative errno from opening or reading
 * the file (-ENOENT when there is none), -EINVAL if its content is not an
 * id or data_dir is too long.
 */
int zk_config_read_myid(const char *data_dir, uint32_t *id_out, char *err,
                        size_t errlen);

/* Returns the server with this id, or NULL. The pointer is into c. */
const struct zk_config_server *zk_config_server(const struct zk_config *c,
                                                uint32_t id);

/* Overwrites the secret in c (also against the compiler removing the
 * store); call before c goes out of scope. */
void zk_config_wipe(struct zk_config *c);

#endif /* ZK_CONFIG_H */
