"""The detection library: defensemap's own detections (``content/detections``), their
validation, conversion to other SIEM languages and support matrix."""
