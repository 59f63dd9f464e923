"""The bad-input corpus of issue 14: every user-caused failure of every command comes out as one
`error:` line on stderr and its documented exit code, never a traceback, and leaves the store,
run and output folders as they were (a fingerprint of every file, tests/fingerprint.py).

Exit codes (atmorep_core/errors.py): 2 invalid option or recipe; 3 bad input data (also
implausible values and input outside the checkpoint's experience); 4 store or checkpoint missing,
not one, or mismatched; 5 locked; 6 input times not (yet) there or the store being updated (cron
retries); 7 cannot read or write (disk full, read-only file system, an output path of the wrong
type). A missing input, or an input of the wrong kind, takes its input's code (recipe 2, GRIB 3,
store or checkpoint 4).

Option errors are refused before any work: their output folder (`{ws}/out` and the like) does
not exist before and must not exist after. Failures found while running start from an existing
output folder holding an earlier file, which must come through untouched.

The modules: `cli` runs the CLI (in this process, or isolated in a subprocess); `inputs` makes
the bad GRIB files; `workspace` holds a case's folder and the set-ups that prepare it; `corpus`
lists the cases; conftest.py has the stores, runs and products they share. test_refusals.py runs
the corpus, test_what_must_work.py what must keep working beside it.
"""
