"""Alerts leaving the device: schema (lfr.alert/1), signing, sealed crops, spool, MQTT publisher.

Formats: docs/formats/events.md and docs/formats/topics.md.
"""
