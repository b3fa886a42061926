/*
 * cli: the command line. Parses arguments, runs one command, and turns its
 * result into what the user sees and the exit code:
 *   0 success, 1 bad usage, 2 bad input (e.g. a malformed .torrent),
 *   3 download/seed failure, 130/143 interrupted by SIGINT/SIGTERM.
 * Called once, from main(), on the main thread.
 */
#ifndef PT_CLI_H
#define PT_CLI_H

#define PT_VERSION "0.1.0"

enum cli_exit {
    CLI_EXIT_OK = 0,
    CLI_EXIT_USAGE = 1,
    CLI_EXIT_BAD_INPUT = 2,
    CLI_EXIT_FAILURE = 3,
    CLI_EXIT_SIGINT = 130,
    CLI_EXIT_SIGTERM = 143
};

int cli_run(int argc, char **argv);

#endif
