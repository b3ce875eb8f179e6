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
    -4.6538, 0.4220, 0.8916, 2.6010, 2.2237, -0.1899, 2.3410, 0.6663, -0.3343, -0.3093,
}};

const mc_copy_calib *mc_copy_calib_default(void) { return &builtin; }
