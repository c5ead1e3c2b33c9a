"""The command layer: argument parsing, printing and exit codes over the stages; ``envspec up`` lives here."""
