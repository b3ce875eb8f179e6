/* src/cli/copy_open.c — the command line's copy index: opened beside the
 * retrieval index's file (mc_copy_path_for, so it moves wherever that file
 * goes), loaded when it exists (a bad file is reported and rebuilt), synced
 * with the retrieval index, and saved when that changed it. */
#include "cli.h"
#include "mccom/copy.h"

int mc_cli_copy_open(mc_copy_index **out, mc_retr_index *ix, const char *retr_path, int quiet,
                     int save) {
    mc_err err;
    mc_err_clear(&err);
    char path[4096];
    int rc = mc_copy_new(out, ix, &err);
    if (rc) {
        mc_cli_error("copy index", &err);
        return rc;
    }
    bool changed = true;
    if (retr_path && mc_copy_path_for(retr_path, path, sizeof path) == 0) {
        rc = mc_copy_load(*out, path, &err);
        if (rc == 0)
            changed = false;
        else if (rc != MC_ENOTFOUND && !quiet)
            fprintf(stderr, "mccom: %s; rebuilding the copy index\n", err.msg);
    } else {
        retr_path = NULL;
    }
    mc_copy_sync_stats st;
    rc = mc_copy_sync(*out, &st, &err);
    if (rc) {
        mc_cli_error("copy index", &err);
        mc_copy_free(*out);
        *out = NULL;
        return rc;
    }
    changed = changed || st.n_added || st.n_updated || st.n_removed;
    if (save && changed && retr_path && mc_copy_save(*out, path, &err) != 0 && !quiet)
        fprintf(stderr, "mccom: could not save the copy index: %s\n", err.msg);
    return 0;
}
