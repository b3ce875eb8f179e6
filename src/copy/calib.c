/* src/copy/calib.c — the built-in calibration of the copy tier's precision
 * model (copy.h, mc_copy_calib): logistic-regression coefficients fitted on
 * the calibration repositories of ../shared/bench only (biopython, breezy,
 * dask, mne; every candidate of every line, api and stmt task's first line),
 * never on the other four, by
 *     build/release/bench_copy --calibrate
 * which prints this table and the reliability of the fit on both halves.
 * Nothing else in mccom is fitted to the benchmark. */
#include "mccom/copy.h"

static const mc_copy_calib builtin = {{
    -4.5477, 0.4945, 0.9688, 2.5517, 2.2634, -0.1909, 2.2168, 0.6911, -0.3716, -0.3709,
}};

const mc_copy_calib *mc_copy_calib_default(void) { return &builtin; }
