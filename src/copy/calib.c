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
    -4.5468, 0.4659, 0.9235, 2.5989, 2.0312, -0.1461, 2.1357, 0.7204, -0.3707, -0.3631, -5.7519,
    5.4800,
}};

const mc_copy_calib *mc_copy_calib_default(void) { return &builtin; }
