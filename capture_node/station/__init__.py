"""The operator station: its config, devices, session, certification policy, runtime, status and web page."""
