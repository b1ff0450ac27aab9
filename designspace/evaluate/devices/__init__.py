"""Device profiles: latency predicted for devices designspace does not have. The profile document (``document``), the
shipped and users' profiles with their fitting and calibration (``profiles``), the cost model they fit (``costmodel``),
its features per component (``features``, cached by ``feature_cache``) and the CLI's reports (``report``)."""
