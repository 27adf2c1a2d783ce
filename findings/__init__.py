"""Findings: from a flight's detections to unique, located, graded findings, fault warnings and reports."""
