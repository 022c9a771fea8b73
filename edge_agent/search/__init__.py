"""Retrospective (RFR) and operator-initiated (OIFR) search: matching under a deployment's authority.

``inputs`` reads what is searched (a still, a folder of stills, a video) and fingerprints it;
``authority`` opens the signed deployment and its sealed watchlist through the agent's own
verifying, audited loader; ``retrospective`` searches and says what was found, for the audit log
and for the investigator.
"""
