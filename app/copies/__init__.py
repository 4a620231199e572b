"""Copies of the same picture: the calibrated copy threshold, the duplicate finder, marks."""
