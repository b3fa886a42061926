/* ptorrent's entry point: process-wide setup, then the command line. */
#include <curl/curl.h>
#include <signal.h>
#include <stdio.h>

#include "cli.h"

int main(int argc, char **argv)
{
    /* A peer closing its socket must give EPIPE, not kill the process. */
    signal(SIGPIPE, SIG_IGN);
    /* libcurl's global state must be set up once, before any thread starts. */
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        fprintf(stderr, "ptorrent: could not initialise libcurl\n");
        return CLI_EXIT_FAILURE;
    }
    int rc = cli_run(argc, argv);
    curl_global_cleanup();
    return rc;
}
