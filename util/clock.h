/*
 * The wall clock, in milliseconds since the epoch: the rate limiter's time
 * base (saved state means the same after a restart). Durations on the event
 * loop use the loop's monotonic clock instead (uv_now).
 */
#ifndef IG_UTIL_CLOCK_H
#define IG_UTIL_CLOCK_H

#include <stdint.h>

/* Wall-clock milliseconds (CLOCK_REALTIME). */
uint64_t ig_wall_ms(void);

#endif /* IG_UTIL_CLOCK_H */
