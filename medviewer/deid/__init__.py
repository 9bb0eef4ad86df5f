"""De-identified export: DICOM by the PS3.15 basic profile, whole-slide images without label, macro or metadata."""
