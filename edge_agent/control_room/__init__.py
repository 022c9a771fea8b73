"""The control-room side: verify and store incoming alerts, human adjudication, holds, retention."""
