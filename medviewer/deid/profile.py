"""DICOM PS3.15 Annex E Basic Application Level Confidentiality Profile, as data.

Actions as the standard names them: X remove, Z empty (zero length), D replace with a dummy value,
U replace a UID with a new one (consistently across one export). The table is a commented subset of
Table E.1-1 covering every attribute that identifies the patient, the visit, the people involved and
the device; whatever it misses is still caught by the catch-all rules in ``medviewer.deid.dicom``
(every remaining person name, free text, date and time, every non-standard UID, every private tag).
"""

from __future__ import annotations

from pydicom.datadict import tag_for_keyword

X, Z, D, U = "X", "Z", "D", "U"


def tag_of(keyword: str) -> int:
    """The tag of a standard keyword; the tables below name keywords so a misspelt one fails at import."""
    tag = tag_for_keyword(keyword)
    if tag is None:
        raise KeyError(f"not a DICOM keyword: {keyword}")
    return tag


_ACTIONS_BY_KEYWORD: dict[str, str] = {
    # The patient
    "PatientName": Z,
    "PatientID": Z,
    "IssuerOfPatientID": X,
    "IssuerOfPatientIDQualifiersSequence": X,
    "PatientBirthDate": Z,
    "PatientBirthTime": X,
    "PatientBirthName": X,
    "PatientMotherBirthName": X,
    "PatientSex": Z,
    "PatientAge": X,
    "PatientSize": X,
    "PatientWeight": X,
    "PatientAddress": X,
    "PatientTelephoneNumbers": X,
    "PatientTelecomInformation": X,
    "OtherPatientIDs": X,
    "OtherPatientIDsSequence": X,
    "OtherPatientNames": X,
    "PatientComments": X,
    "PatientInsurancePlanCodeSequence": X,
    "PatientReligiousPreference": X,
    "EthnicGroup": X,
    "Occupation": X,
    "MilitaryRank": X,
    "BranchOfService": X,
    "MedicalRecordLocator": X,
    "MedicalAlerts": X,
    "Allergies": X,
    "AdditionalPatientHistory": X,
    "SmokingStatus": X,
    "PregnancyStatus": X,
    "LastMenstrualDate": X,
    "PatientState": X,
    "CountryOfResidence": X,
    "RegionOfResidence": X,
    "ResponsiblePerson": X,
    "ResponsiblePersonRole": X,
    "ResponsibleOrganization": X,
    "ReferencedPatientSequence": X,
    "ReferencedPatientPhotoSequence": X,
    "PatientSexNeutered": X,
    "PatientSpeciesDescription": X,
    "PatientBreedDescription": X,
    # The visit, the order and the request (accession numbers and order IDs lead back to the patient)
    "AccessionNumber": Z,
    "IssuerOfAccessionNumberSequence": X,
    "StudyID": Z,
    "StudyDate": Z,
    "StudyTime": Z,
    "SeriesDate": X,
    "SeriesTime": X,
    "AcquisitionDate": X,
    "AcquisitionTime": X,
    "AcquisitionDateTime": D,  # X/D: Type 1C in enhanced MR
    "ContentDate": D,  # Type 1 in enhanced and SEG objects: a dummy keeps them valid
    "ContentTime": D,
    "InstanceCreationDate": X,
    "InstanceCreationTime": X,
    "OverlayDate": X,
    "OverlayTime": X,
    "CurveDate": X,
    "CurveTime": X,
    "StudyDescription": X,
    "SeriesDescription": X,
    "ProtocolName": X,
    "DerivationDescription": X,
    "ImageComments": X,
    "StudyComments": X,
    "AdmissionID": X,
    "AdmittingDiagnosesDescription": X,
    "AdmittingDiagnosesCodeSequence": X,
    "ReasonForStudy": X,
    "RequestingService": X,
    "RequestedProcedureDescription": X,
    "RequestedProcedureID": X,
    "RequestedProcedureComments": X,
    "RequestAttributesSequence": X,
    "ScheduledProcedureStepID": X,
    "ScheduledProcedureStepDescription": X,
    "PerformedProcedureStepID": X,
    "PerformedProcedureStepDescription": X,
    "PerformedProcedureStepStartDate": X,
    "PerformedProcedureStepStartTime": X,
    "CommentsOnThePerformedProcedureStep": X,
    "ReferencedStudySequence": X,
    # X in the table, but Type 2 in SR Document Series and 1C in MR Series: kept, with its UIDs replaced
    "ReferencedPerformedProcedureStepSequence": U,
    "IssuerOfAdmissionID": X,
    "ServiceEpisodeID": X,
    "ServiceEpisodeDescription": X,
    "VisitComments": X,
    "CurrentPatientLocation": X,
    "PatientInstitutionResidence": X,
    "ImagingServiceRequestComments": X,
    "PlacerOrderNumberImagingServiceRequest": X,
    "FillerOrderNumberImagingServiceRequest": X,
    "TextComments": X,
    "TextString": X,
    "FrameComments": X,
    "ClinicalTrialSponsorName": X,
    "ClinicalTrialSubjectID": X,
    "ClinicalTrialSubjectReadingID": X,
    # The people and the institution
    "ReferringPhysicianName": Z,
    "ReferringPhysicianAddress": X,
    "ReferringPhysicianTelephoneNumbers": X,
    "ReferringPhysicianIdentificationSequence": X,
    "PhysiciansOfRecord": X,
    "PhysiciansOfRecordIdentificationSequence": X,
    "PerformingPhysicianName": X,
    "PerformingPhysicianIdentificationSequence": X,
    "NameOfPhysiciansReadingStudy": X,
    "PhysiciansReadingStudyIdentificationSequence": X,
    "RequestingPhysician": X,
    "ScheduledPerformingPhysicianName": X,
    "OperatorsName": X,
    "OperatorIdentificationSequence": X,
    "PersonName": D,  # Type 1C in an SR PNAME content item
    "PersonAddress": X,
    "PersonTelephoneNumbers": X,
    "VerifyingObserverName": D,  # Type 1 inside VerifyingObserverSequence (SR)
    "VerifyingObserverIdentificationCodeSequence": Z,
    "VerifyingOrganization": D,  # Type 1 inside VerifyingObserverSequence
    "ContentCreatorName": Z,
    "AuthorObserverSequence": X,
    "ParticipantSequence": X,
    "InstitutionName": X,
    "InstitutionAddress": X,
    "InstitutionCodeSequence": X,
    "InstitutionalDepartmentName": X,
    # The device and the site
    "StationName": X,
    "DeviceSerialNumber": D,  # X/Z/D: Type 1 in the Enhanced General Equipment module
    "DeviceUID": U,
    "DetectorID": X,
    "GantryID": X,
    "PlateID": X,
    "CassetteID": X,
    "GeneratorID": X,
    "SourceSerialNumber": X,
    "DeviceDescription": X,
    "ModifiedAttributesSequence": X,
    "OriginalAttributesSequence": X,
    "DigitalSignaturesSequence": X,
    # UIDs that identify this study's instances (every other non-standard UID is replaced as well)
    "StudyInstanceUID": U,
    "SeriesInstanceUID": U,
    "SOPInstanceUID": U,
    "MediaStorageSOPInstanceUID": U,
    "FrameOfReferenceUID": U,
    "ReferencedSOPInstanceUID": U,
    "ReferencedFrameOfReferenceUID": U,
    "RelatedFrameOfReferenceUID": U,
    "SynchronizationFrameOfReferenceUID": U,
    "IrradiationEventUID": U,
    "ConcatenationUID": U,
    "DimensionOrganizationUID": U,
    "InstanceCreatorUID": U,
    "StorageMediaFileSetUID": U,
    "TransactionUID": U,
    "UID": U,
    "SpecimenUID": U,
    "IssuerOfTheSpecimenIdentifierSequence": Z,  # Type 2 in the Specimen module
    "IssuerOfTheContainerIdentifierSequence": Z,  # Type 2 in the Specimen module
    # Segmentations: the description is free text; label and algorithm name are Type 1 and get dummies
    "SegmentDescription": X,
}

#: Element tag -> action.
ACTIONS: dict[int, str] = {tag_of(k): a for k, a in _ACTIONS_BY_KEYWORD.items()}

#: Free-text attributes that describe the equipment or code a concept and cannot hold identifiers by design;
#: every other PN, LO, SH, LT, ST, UT, UC and AE value is replaced by a dummy (UR values are removed). Code
#: meanings and segment labels are rewritten by their own rules in ``medviewer.deid.dicom``. Keep it short.
SAFE_TEXT: frozenset[int] = frozenset(
    tag_of(keyword)
    for keyword in (
        "Manufacturer",
        "ManufacturerModelName",
        "SoftwareVersions",
        "ConvolutionKernel",
        "CodeValue",
        "CodingSchemeDesignator",
        "CodingSchemeVersion",
        "DeidentificationMethod",
    )
)

#: Groups removed whole: curves (50xx) and overlays (60xx), which can hold burned-in text and comments.
REMOVED_GROUP_RANGES = ((0x5000, 0x50FF), (0x6000, 0x60FF))

#: Dummy values for D by VR. Every text, name, date and time the table does not name gets one too, rather
#: than being emptied: many are Type 1 somewhere (RescaleType, LUTLabel, coil names, the per-frame
#: FrameAcquisitionDateTime), and an empty Type 1 value makes the export invalid.
DUMMIES: dict[str, str] = {"DA": "19000101", "TM": "000000", "DT": "19000101000000", "PN": "ANONYMOUS"}
DEFAULT_DUMMY = "ANONYMOUS"

#: Code String attributes whose values are chosen by a person or a site, not from a fixed list, kept only
#: when they are one of the standard's defined terms (PS3.16 Annex L for body parts), else removed.
FREE_CODE_STRINGS: dict[int, frozenset[str]] = {
    tag_of("BodyPartExamined"): frozenset(
        """ABDOMEN ABDOMENPELVIS ADRENAL ANKLE AORTA ARM AXILLA BACK BLADDER BRAIN BREAST BRONCHUS BUTTOCK
        CALCANEUS CALF CAROTID CEREBELLUM CERVIX CHEEK CHEST CHESTABDOMEN CHESTABDPELVIS CIRCLEOFWILLIS CLAVICLE
        COCCYX COLON CORNEA CORONARYARTERY CSPINE CTSPINE DUODENUM EAR ELBOW ESOPHAGUS EXTREMITY EYE EYELID FACE
        FEMUR FINGER FOOT GALLBLADDER HAND HEAD HEADNECK HEART HIP HUMERUS ILEUM ILIUM IAC JAW JEJUNUM KIDNEY
        KNEE LARYNX LEG LIVER LSPINE LSSPINE LUNG MAXILLA MEDIASTINUM MOUTH NECK NECKCHEST NECKCHESTABDOMEN
        NECKCHESTABDPELV NOSE ORBIT OVARY PANCREAS PAROTID PATELLA PELVIS PENIS PHARYNX PROSTATE RECTUM RIB
        SCALP SCAPULA SCLERA SCROTUM SHOULDER SKULL SPINE SPLEEN SSPINE STERNUM STOMACH SUBMANDIBULAR TESTIS
        THIGH THUMB THYMUS THYROID TIBIA TOE TONGUE TRACHEA TSPINE TLSPINE ULNA URETER URETHRA UTERUS VAGINA
        VULVA WHOLEBODY WRIST ZYGOMA""".split()
    ),
}

#: Code String labels that a person types for an object (Type 1 where they occur): replaced by a dummy,
#: which is a valid Code String.
LABEL_CODE_STRINGS: frozenset[int] = frozenset(tag_of(k) for k in ("ContentLabel",))

#: Value representations that can carry free text or names.
TEXT_VRS = frozenset({"PN", "LO", "SH", "LT", "ST", "UT", "UC", "UR", "AE"})
DATE_VRS = frozenset({"DA", "TM", "DT"})

BASIC_PROFILE_CODE = ("113100", "DCM", "Basic Application Confidentiality Profile")
DEIDENTIFICATION_METHOD = "PS3.15 E1 Basic Application Confidentiality Profile"

#: Secondary capture SOP classes: screenshots and scanned documents, which often show names in the pixels.
SECONDARY_CAPTURE_CLASSES = frozenset(
    {
        "1.2.840.10008.5.1.4.1.1.7",
        "1.2.840.10008.5.1.4.1.1.7.1",
        "1.2.840.10008.5.1.4.1.1.7.2",
        "1.2.840.10008.5.1.4.1.1.7.3",
        "1.2.840.10008.5.1.4.1.1.7.4",
    }
)
ULTRASOUND_CLASSES = frozenset(
    {"1.2.840.10008.5.1.4.1.1.6.1", "1.2.840.10008.5.1.4.1.1.6.2", "1.2.840.10008.5.1.4.1.1.3.1"}
)


#: Binary VRs: removed everywhere except the pixel data of the image itself and the numeric data below.
BINARY_VRS = frozenset({"OB", "OW", "OF", "OD", "OL", "OV", "OB or OW", "US or OW"})
KEPT_BINARY: frozenset[int] = frozenset(
    tag_of(k)
    for k in (
        "PixelData",
        "FloatPixelData",
        "DoubleFloatPixelData",
        "RedPaletteColorLookupTableData",
        "GreenPaletteColorLookupTableData",
        "BluePaletteColorLookupTableData",
        "SegmentedRedPaletteColorLookupTableData",
        "SegmentedGreenPaletteColorLookupTableData",
        "SegmentedBluePaletteColorLookupTableData",
    )
)
#: Binary values kept at any depth: numbers that are the object's content and Type 1 or 1C where they occur
#: (a LUT's entries, annotation coordinates and measurements), and the ICC profile, whose text tags are
#: blanked (``medviewer.deid.icc``). Numbers cannot be given a dummy without changing what the object shows.
KEPT_NESTED_BINARY: frozenset[int] = frozenset(
    tag_of(k)
    for k in (
        "LUTData",
        "PointCoordinatesData",
        "DoublePointCoordinatesData",
        "LongPrimitivePointIndexList",
        "FloatingPointValues",
        "ICCProfile",
    )
)
ICC_PROFILE = tag_of("ICCProfile")
#: Sequences removed whole: a thumbnail can show what the image shows, burned-in text included.
REMOVED_SEQUENCES: frozenset[int] = frozenset(tag_of(k) for k in ("IconImageSequence",))
