"""Whether a configuration regressed: statistics, tolerances, verdicts, the baseline file and
the machine fingerprint."""
