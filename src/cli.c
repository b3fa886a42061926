/*
 * cli: DESIGN
 *
 * One function per command. Each parses its own options with getopt_long,
 * calls into the library, and is the only place (with the session) that
 * prints errors for the user: "ptorrent: FILE: what is wrong".
 */
#include "cli.h"

#include <errno.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "buf.h"
#include "create.h"
#include "json.h"
#include "log.h"
#include "metainfo.h"
#include "session.h"
#include "sha1.h"
#include "units.h"

struct command {
    const char *name;
    int (*run)(int argc, char **argv);
    const char *usage;
};

static const char *const top_usage =
    "usage: ptorrent COMMAND [OPTIONS]\n"
    "\n"
    "commands:\n"
    "  info FILE.torrent            show what a torrent holds\n"
    "  download -t FILE.torrent -o DIR\n"
    "                               download a torrent into DIR\n"
    "  seed -t FILE.torrent -d DIR  upload the complete data in DIR to others\n"
    "  create -a URL -o OUT.torrent PATH\n"
    "                               make a .torrent of a file or directory\n"
    "  help COMMAND                 show the options of COMMAND\n"
    "\n"
    "  ptorrent --help | --version\n";

static const char *const info_usage =
    "usage: ptorrent info [--json] FILE.torrent\n"
    "\n"
    "Shows the name, info hash, piece length and count, total size, private\n"
    "flag, trackers (by tier) and files of a .torrent file.\n"
    "\n"
    "  --json        print one JSON object instead of text\n"
    "  -h, --help    show this help\n";

static int usage_error(const char *usage, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;

/* Prints "ptorrent: <message>" and the command's usage; returns exit code 1. */
static int usage_error(const char *usage, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "ptorrent: ");
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "\n%s", usage);
    return CLI_EXIT_USAGE;
}

/* Loads a torrent or prints one line saying why not. */
static int load_torrent(const char *path, struct metainfo *m)
{
    struct pt_errctx ctx = {PT_NO_OFFSET, ""};
    enum pt_err e = metainfo_load(path, m, &ctx);
    if (e == PT_OK)
        return CLI_EXIT_OK;
    if (ctx.offset != PT_NO_OFFSET)
        fprintf(stderr, "ptorrent: %s: %s (at byte %zu)\n", path, ctx.msg, ctx.offset);
    else
        fprintf(stderr, "ptorrent: %s: %s\n", path, ctx.msg[0] ? ctx.msg : pt_strerror(e));
    return e == PT_ERR_NOMEM ? CLI_EXIT_FAILURE : CLI_EXIT_BAD_INPUT;
}

static void print_info_text(const struct metainfo *m)
{
    char hex[41], sz[UNITS_STRLEN];
    sha1_hex(m->info_hash, hex);
    printf("name:          %s\n", m->name);
    printf("info hash:     %s\n", hex);
    printf("piece length:  %u (%s)\n", m->piece_length, units_bytes(m->piece_length, sz));
    printf("pieces:        %u\n", m->piece_count);
    printf("total size:    %llu (%s)\n", (unsigned long long)m->total_length,
           units_bytes(m->total_length, sz));
    printf("private:       %s\n", m->is_private ? "yes" : "no");
    if (m->comment)
        printf("comment:       %s\n", m->comment);
    if (m->created_by)
        printf("created by:    %s\n", m->created_by);
    if (m->creation_date >= 0) {
        time_t t = (time_t)m->creation_date;
        struct tm tm;
        char when[64] = "?";
        if (gmtime_r(&t, &tm))
            strftime(when, sizeof when, "%Y-%m-%d %H:%M:%S UTC", &tm);
        printf("creation date: %s\n", when);
    }
    printf("trackers:%s\n", m->tier_count ? "" : "      none");
    for (size_t t = 0; t < m->tier_count; t++)
        for (size_t i = 0; i < m->tiers[t].count; i++)
            printf("  tier %zu: %s\n", t + 1, m->tiers[t].urls[i]);
    printf("files (%zu):\n", m->file_count);
    for (size_t i = 0; i < m->file_count; i++)
        printf("  %12llu  %s\n", (unsigned long long)m->files[i].length, m->files[i].path);
}

static void print_info_json(const struct metainfo *m)
{
    char hex[41];
    struct buf b;
    buf_init(&b);
    sha1_hex(m->info_hash, hex);
    buf_append_str(&b, "{\"name\":");
    json_put_cstr(&b, m->name);
    buf_printf(&b, ",\"info_hash\":\"%s\",\"piece_length\":%u,\"piece_count\":%u", hex,
               m->piece_length, m->piece_count);
    buf_printf(&b, ",\"total_size\":%llu,\"private\":%s,\"trackers\":[",
               (unsigned long long)m->total_length, m->is_private ? "true" : "false");
    for (size_t t = 0; t < m->tier_count; t++) {
        buf_append_str(&b, t ? ",[" : "[");
        for (size_t i = 0; i < m->tiers[t].count; i++) {
            if (i)
                buf_append_str(&b, ",");
            json_put_cstr(&b, m->tiers[t].urls[i]);
        }
        buf_append_str(&b, "]");
    }
    buf_append_str(&b, "],\"files\":[");
    for (size_t i = 0; i < m->file_count; i++) {
        buf_append_str(&b, i ? ",{\"path\":" : "{\"path\":");
        json_put_cstr(&b, m->files[i].path);
        buf_printf(&b, ",\"size\":%llu}", (unsigned long long)m->files[i].length);
    }
    buf_append_str(&b, "],\"comment\":");
    json_put_cstr(&b, m->comment);
    buf_append_str(&b, ",\"created_by\":");
    json_put_cstr(&b, m->created_by);
    if (m->creation_date >= 0)
        buf_printf(&b, ",\"creation_date\":%lld}\n", (long long)m->creation_date);
    else
        buf_append_str(&b, ",\"creation_date\":null}\n");
    if (buf_ok(&b))
        fwrite(b.data, 1, b.len, stdout);
    buf_release(&b);
}

static int cmd_info(int argc, char **argv)
{
    static const struct option opts[] = {
        {"json", no_argument, NULL, 'j'}, {"help", no_argument, NULL, 'h'}, {NULL, 0, NULL, 0}};
    bool json = false;
    int c;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        if (c == 'j')
            json = true;
        else if (c == 'h')
            return printf("%s", info_usage), CLI_EXIT_OK;
        else
            return usage_error(info_usage, "bad option");
    }
    if (optind != argc - 1)
        return usage_error(info_usage, "info needs exactly one FILE.torrent");
    struct metainfo m;
    int rc = load_torrent(argv[optind], &m);
    if (rc != CLI_EXIT_OK)
        return rc;
    if (json)
        print_info_json(&m);
    else
        print_info_text(&m);
    metainfo_release(&m);
    return fflush(stdout) == 0 ? CLI_EXIT_OK : CLI_EXIT_FAILURE;
}

#define SESSION_OPTIONS_HELP                                                                       \
    "  -q, --quiet             no progress line and no summary\n"                                  \
    "  -v, --verbose           log connections and tracker replies (twice: debug)\n"               \
    "      --port N            listen on port N (default 6881, or the next free one;\n"            \
    "                          0: any); the tracker is told the port really used\n"              \
    "      --peer HOST:PORT    also connect to this peer (repeatable; numeric IPv4\n"              \
    "                          or [IPv6])\n"                                                       \
    "      --max-peers N       peer connections at once, in and out (default 50)\n"               \
    "      --peer-timeout S    drop a peer that leaves requests unanswered for S\n"                \
    "                          seconds (default 60)\n"                                             \
    "      --max-download-rate KIB   limit over all peers, KiB/s (default: none)\n"              \
    "      --max-upload-rate KIB     limit over all peers, KiB/s (default: none)\n"              \
    "      --seed-ratio R      seed until uploaded = R x the torrent's size\n"                     \
    "      --seed-time MIN     seed for MIN minutes after completion\n"                            \
    "      --stats-json FILE   write figures about the run to FILE at exit\n"                      \
    "  -h, --help              show this help\n"

static const char *const download_usage =
    "usage: ptorrent download -t FILE.torrent -o DIR [OPTIONS]\n"
    "\n"
    "Downloads the torrent into DIR, verifying every piece, and exits when all\n"
    "of it is on disk (or, with --seed-ratio/--seed-time, after seeding that\n"
    "long). An interrupted download resumes where it stopped: the state is kept\n"
    "in DIR/.ptorrent/.\n"
    "\n"
    "  -t, --torrent FILE      the .torrent file\n"
    "  -o, --output DIR        where the files go (created if missing)\n" SESSION_OPTIONS_HELP;

static const char *const seed_usage =
    "usage: ptorrent seed -t FILE.torrent -d DIR [OPTIONS]\n"
    "\n"
    "Checks the data in DIR (trusting DIR/.ptorrent/ when it is valid, else\n"
    "hashing every piece) and uploads it to other peers until interrupted, or\n"
    "until --seed-ratio or --seed-time is reached.\n"
    "\n"
    "  -t, --torrent FILE      the .torrent file\n"
    "  -d, --dir DIR           the directory holding the torrent's data\n" SESSION_OPTIONS_HELP;

/* Parses a whole decimal number in [lo, hi]. */
static bool parse_uint(const char *s, long lo, long hi, long *out)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || *s == '\0' || *end != '\0' || v < lo || v > hi)
        return false;
    *out = v;
    return true;
}

static bool parse_ratio(const char *s, double *out)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || *s == '\0' || *end != '\0' || !(v >= 0 && v <= 1e6))
        return false;
    *out = v;
    return true;
}

enum {
    OPT_PORT = 256,
    OPT_PEER,
    OPT_MAX_PEERS,
    OPT_STATS,
    OPT_PEER_TIMEOUT,
    OPT_SEED_RATIO,
    OPT_SEED_TIME,
    OPT_MAX_DOWN,
    OPT_MAX_UP
};

/* Options shared by download and seed. Returns 0, or the usage exit code. */
static int session_option(struct session_config *cfg, const char *usage, int c, const char *arg)
{
    long v;
    switch (c) {
    case 't': cfg->torrent_path = arg; return 0;
    case 'o': case 'd': cfg->out_dir = arg; return 0;
    case 'q': cfg->quiet = true; return 0;
    case 'v': cfg->verbose++; return 0;
    case OPT_STATS: cfg->stats_json = arg; return 0;
    case OPT_PORT:
        if (!parse_uint(arg, 0, 65535, &v))
            return usage_error(usage, "--port: '%s' is not a port number", arg);
        cfg->port = (uint16_t)v;
        return 0;
    case OPT_MAX_PEERS:
        if (!parse_uint(arg, 1, 1000, &v))
            return usage_error(usage, "--max-peers: '%s' is not in 1..1000", arg);
        cfg->max_peers = (unsigned)v;
        return 0;
    case OPT_PEER_TIMEOUT:
        if (!parse_uint(arg, 1, 3600, &v))
            return usage_error(usage, "--peer-timeout: '%s' is not in 1..3600", arg);
        cfg->peer_timeout_s = (int)v;
        return 0;
    case OPT_SEED_TIME:
        if (!parse_uint(arg, 0, 10L * 365 * 24 * 60, &v))
            return usage_error(usage, "--seed-time: '%s' is not a number of minutes", arg);
        cfg->seed_time_s = (int64_t)v * 60;
        return 0;
    case OPT_SEED_RATIO:
        if (!parse_ratio(arg, &cfg->seed_ratio))
            return usage_error(usage, "--seed-ratio: '%s' is not a ratio (e.g. 1.5)", arg);
        return 0;
    case OPT_MAX_DOWN:
    case OPT_MAX_UP:
        if (!parse_uint(arg, 1, 100L * 1024 * 1024, &v))
            return usage_error(usage, "%s: '%s' is not a rate in KiB/s",
                               c == OPT_MAX_DOWN ? "--max-download-rate" : "--max-upload-rate",
                               arg);
        *(c == OPT_MAX_DOWN ? &cfg->max_download_rate : &cfg->max_upload_rate) =
            (uint64_t)v * 1024;
        return 0;
    case OPT_PEER:
        if (cfg->peer_count == SESSION_MAX_CLI_PEERS)
            return usage_error(usage, "too many --peer options (at most %d)",
                               SESSION_MAX_CLI_PEERS);
        if (addr_parse(arg, &cfg->peers[cfg->peer_count]) != PT_OK)
            return usage_error(usage, "--peer: '%s' is not HOST:PORT with a numeric address",
                               arg);
        cfg->peer_count++;
        return 0;
    default:
        return usage_error(usage, "bad option");
    }
}

/* `download` and `seed`: the same session, another mode and directory flag. */
static int run_session_command(int argc, char **argv, enum session_mode mode)
{
    const char *usage = mode == SESSION_SEED ? seed_usage : download_usage;
    static const struct option opts[] = {
        {"torrent", required_argument, NULL, 't'},
        {"output", required_argument, NULL, 'o'},
        {"dir", required_argument, NULL, 'd'},
        {"quiet", no_argument, NULL, 'q'},
        {"verbose", no_argument, NULL, 'v'},
        {"help", no_argument, NULL, 'h'},
        {"port", required_argument, NULL, OPT_PORT},
        {"peer", required_argument, NULL, OPT_PEER},
        {"max-peers", required_argument, NULL, OPT_MAX_PEERS},
        {"peer-timeout", required_argument, NULL, OPT_PEER_TIMEOUT},
        {"seed-ratio", required_argument, NULL, OPT_SEED_RATIO},
        {"seed-time", required_argument, NULL, OPT_SEED_TIME},
        {"max-download-rate", required_argument, NULL, OPT_MAX_DOWN},
        {"max-upload-rate", required_argument, NULL, OPT_MAX_UP},
        {"stats-json", required_argument, NULL, OPT_STATS},
        {NULL, 0, NULL, 0}};
    struct session_config cfg;
    session_config_init(&cfg);
    cfg.mode = mode;
    const char *shortopts = mode == SESSION_SEED ? "t:d:qvh" : "t:o:qvh";
    int c;
    while ((c = getopt_long(argc, argv, shortopts, opts, NULL)) != -1) {
        if (c == 'h')
            return printf("%s", usage), CLI_EXIT_OK;
        if ((c == 'o' && mode == SESSION_SEED) || (c == 'd' && mode == SESSION_DOWNLOAD))
            return usage_error(usage, "use %s for the directory",
                               mode == SESSION_SEED ? "-d" : "-o");
        if (session_option(&cfg, usage, c, optarg) != 0)
            return CLI_EXIT_USAGE;
    }
    if (optind != argc)
        return usage_error(usage, "unexpected argument '%s'", argv[optind]);
    if (!cfg.torrent_path || !cfg.out_dir)
        return usage_error(usage, "%s needs -t FILE.torrent and %s DIR", argv[0],
                           mode == SESSION_SEED ? "-d" : "-o");
    log_set_level(cfg.verbose >= 2 ? LOG_DEBUG : cfg.verbose == 1 ? LOG_INFO : LOG_WARN);
    return session_run(&cfg);
}

static int cmd_download(int argc, char **argv)
{
    return run_session_command(argc, argv, SESSION_DOWNLOAD);
}

static int cmd_seed(int argc, char **argv)
{
    return run_session_command(argc, argv, SESSION_SEED);
}

static const struct command commands[] = {
    {"info", cmd_info, info_usage},
    {"download", cmd_download, download_usage},
    {"seed", cmd_seed, seed_usage},
    {"create", create_cli, NULL}, /* usage: create_usage, not a constant expression */
};
#define COMMAND_COUNT (sizeof commands / sizeof commands[0])

static const struct command *find_command(const char *name)
{
    for (size_t i = 0; i < COMMAND_COUNT; i++)
        if (strcmp(commands[i].name, name) == 0)
            return &commands[i];
    return NULL;
}

int cli_run(int argc, char **argv)
{
    if (argc < 2)
        return usage_error(top_usage, "no command given");
    const char *cmd = argv[1];
    if (strcmp(cmd, "--help") == 0 || strcmp(cmd, "-h") == 0) {
        printf("%s", top_usage);
        return CLI_EXIT_OK;
    }
    if (strcmp(cmd, "--version") == 0 || strcmp(cmd, "-V") == 0) {
        printf("ptorrent %s\n", PT_VERSION);
        return CLI_EXIT_OK;
    }
    if (strcmp(cmd, "help") == 0) {
        const struct command *c = argc > 2 ? find_command(argv[2]) : NULL;
        if (argc > 2 && !c)
            return usage_error(top_usage, "unknown command '%s'", argv[2]);
        printf("%s", !c ? top_usage : c->usage ? c->usage : create_usage);
        return CLI_EXIT_OK;
    }
    const struct command *c = find_command(cmd);
    if (!c)
        return usage_error(top_usage, "unknown command '%s'", cmd);
    return c->run(argc - 1, argv + 1);
}
