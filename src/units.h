/* units: human-readable sizes and durations for messages. Pure functions. */
#ifndef PT_UNITS_H
#define PT_UNITS_H

#include <stdint.h>

#define UNITS_STRLEN 32

/* "512 B", "1.5 KiB", "64.0 MiB", "4.00 GiB" into out. Returns out. */
char *units_bytes(uint64_t bytes, char out[UNITS_STRLEN]);
/* "45s", "12m03s", "3h07m", or "--" for a negative value. Returns out. */
char *units_duration(int64_t seconds, char out[UNITS_STRLEN]);

#endif
