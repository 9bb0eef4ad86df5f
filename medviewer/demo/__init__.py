"""Deterministic synthetic demo data: a chest CT phantom as DICOM and NIfTI, and an H&E-like slide.

The same seed always gives the same bytes, so demo-based tests and screenshots are reproducible, and
the planted truth (``ground_truth.json``) lets model training and saliency checks know where the
lesions really are.
"""
