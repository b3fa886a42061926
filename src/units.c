#include "units.h"

#include <stdio.h>

char *units_bytes(uint64_t bytes, char out[UNITS_STRLEN])
{
    static const char *names[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB"};
    double v = (double)bytes;
    unsigned u = 0;
    while (v >= 1024.0 && u + 1 < sizeof names / sizeof names[0]) {
        v /= 1024.0;
        u++;
    }
    if (u == 0)
        snprintf(out, UNITS_STRLEN, "%llu B", (unsigned long long)bytes);
    else
        snprintf(out, UNITS_STRLEN, v < 10 ? "%.2f %s" : "%.1f %s", v, names[u]);
    return out;
}

char *units_duration(int64_t s, char out[UNITS_STRLEN])
{
    if (s < 0)
        snprintf(out, UNITS_STRLEN, "--");
    else if (s < 60)
        snprintf(out, UNITS_STRLEN, "%llds", (long long)s);
    else if (s < 3600)
        snprintf(out, UNITS_STRLEN, "%lldm%02llds", (long long)(s / 60), (long long)(s % 60));
    else
        snprintf(out, UNITS_STRLEN, "%lldh%02lldm", (long long)(s / 3600),
                 (long long)(s / 60 % 60));
    return out;
}
