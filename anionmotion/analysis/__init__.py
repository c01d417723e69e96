"""Analyses: each module turns a Trajectory into a Result (see SPEC §2–7)."""
