"""Stage 3, lock: conda-lock drives a py-rattler conda substitute; lockfile formats are read and written here."""
