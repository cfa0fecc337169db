"""The service in the NHS's own formats: HL7 FHIR R4 resources and CDS Hooks 2.0 (issue 17).

Pure like :mod:`app.ledger` and :mod:`app.policy` (standard library only, no Flask, no
SQLAlchemy, no clock): these modules map the service's own records to and from FHIR JSON; the
HTTP layer (``app/api/fhir*.py``, ``app/api/cds_hooks.py``) parses, calls one service and renders.
"""
